//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections to one server,
//! each sending the same request again as soon as the previous response has been read, for a
//! warm-up period (not measured) and then a measured period. Every response must have the
//! expected status; latencies of the measured successful requests go into a [`Histogram`] of
//! bounded size, whatever the number of requests.
//!
//! The request is a [`Target`]: a method, a path, headers and a body, so the same generator
//! measures any endpoint (manifest `HEAD`, blob `GET`, `/v2/`, ...). It runs on the tokio
//! runtime it is called from (`tokio::spawn`s one task per connection).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;

/// How long one request may take before it counts as an error and its connection is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection task waits before connecting again after failing to.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// The request every connection sends, again and again.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server (`127.0.0.1:PORT`).
    pub addr: SocketAddr,
    /// `HEAD`, `GET`, ...
    pub method: Method,
    /// The origin-form path and query: `/v2/<name>/manifests/<tag>`.
    pub path: String,
    /// Headers sent with every request; `Host` is added when missing.
    pub headers: HeaderMap,
    /// The request body (empty for `HEAD` and `GET`).
    pub body: Bytes,
    /// The status every response must have.
    pub expect: StatusCode,
}

impl Target {
    /// `method path` on `addr` with no headers or body, expecting `200 OK`.
    pub fn new(addr: SocketAddr, method: Method, path: impl Into<String>) -> Self {
        Target {
            addr,
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            expect: StatusCode::OK,
        }
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, Error> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .body(Full::new(self.body.clone()))?;
        *request.headers_mut() = self.headers.clone();
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, HeaderValue::try_from(self.addr.to_string())?);
        }
        Ok(request)
    }
}

/// How much load, for how long.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Concurrent keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Load before measuring (connections and caches warm up); its requests are not measured.
    pub warmup: Duration,
    /// The measured period.
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Connections used.
    pub connections: usize,
    /// The measured period.
    pub duration: Duration,
    /// Requests started in the measured period that got the expected status.
    pub requests: u64,
    /// Requests started in the measured period that failed (wrong status, connection error,
    /// timeout).
    pub errors: u64,
    /// Successful requests during the warm-up.
    pub warmup_requests: u64,
    /// Failed requests during the warm-up.
    pub warmup_errors: u64,
    /// Latencies of the measured successful requests, in microseconds.
    pub latency: Histogram,
    /// Response body bytes received in the measured period.
    pub body_bytes: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// Successful requests per second in the measured period.
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Errors during the warm-up and the measured period together.
    pub fn total_errors(&self) -> u64 {
        self.errors + self.warmup_errors
    }
}

/// Runs the load: opens `options.connections` connections to `target.addr` (failing if one
/// cannot be opened), then sends `target` on each in a closed loop through the warm-up and the
/// measured period. Requests in flight when the period ends are awaited and counted.
pub async fn run(target: &Target, options: &LoadOptions) -> Result<LoadReport, Error> {
    if options.connections == 0 {
        return Err("the load needs at least one connection".into());
    }
    if options.duration.is_zero() {
        return Err("the measured period must be longer than zero".into());
    }
    target.request()?;
    let target = Arc::new(target.clone());
    let mut senders = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let sender = connect(target.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        senders.push(sender);
    }

    let measure_from = Instant::now() + options.warmup;
    let until = measure_from + options.duration;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let target = Arc::clone(&target);
            tokio::spawn(connection_loop(target, sender, measure_from, until))
        })
        .collect();

    let mut report = LoadReport {
        connections: options.connections,
        duration: options.duration,
        requests: 0,
        errors: 0,
        warmup_requests: 0,
        warmup_errors: 0,
        latency: Histogram::new(),
        body_bytes: 0,
        first_error: None,
    };
    for task in tasks {
        let stats = task.await?;
        report.requests += stats.requests;
        report.errors += stats.errors;
        report.warmup_requests += stats.warmup_requests;
        report.warmup_errors += stats.warmup_errors;
        report.body_bytes += stats.body_bytes;
        report.latency.merge(&stats.latency);
        if report.first_error.is_none() {
            report.first_error = stats.first_error;
        }
    }
    Ok(report)
}

/// What one connection's task counted.
struct ConnectionStats {
    requests: u64,
    errors: u64,
    warmup_requests: u64,
    warmup_errors: u64,
    body_bytes: u64,
    latency: Histogram,
    first_error: Option<String>,
}

impl ConnectionStats {
    fn failed(&mut self, measured: bool, error: String) {
        if measured {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        self.first_error.get_or_insert(error);
    }
}

/// A failed request; `Status` leaves the connection usable.
enum Failure {
    Status(String),
    Connection(String),
}

async fn connection_loop(
    target: Arc<Target>,
    sender: SendRequest<Full<Bytes>>,
    measure_from: Instant,
    until: Instant,
) -> ConnectionStats {
    let mut stats = ConnectionStats {
        requests: 0,
        errors: 0,
        warmup_requests: 0,
        warmup_errors: 0,
        body_bytes: 0,
        latency: Histogram::new(),
        first_error: None,
    };
    let mut sender = Some(sender);
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let measured = started >= measure_from;
        let Some(connection) = sender.as_mut() else {
            match connect(target.addr).await {
                Ok(new) => sender = Some(new),
                Err(e) => {
                    stats.failed(measured, format!("reconnecting: {e}"));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
            continue;
        };
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, send_one(connection, &target)).await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Ok(body_bytes)) => {
                if measured {
                    stats.requests += 1;
                    stats.body_bytes += body_bytes;
                    stats
                        .latency
                        .record(elapsed.as_micros().try_into().unwrap_or(u64::MAX));
                } else {
                    stats.warmup_requests += 1;
                }
            }
            Ok(Err(Failure::Status(e))) => stats.failed(measured, e),
            Ok(Err(Failure::Connection(e))) => {
                stats.failed(measured, e);
                sender = None;
            }
            Err(_) => {
                stats.failed(measured, format!("no response in {REQUEST_TIMEOUT:?}"));
                sender = None;
            }
        }
    }
    stats
}

/// Sends the request and reads the whole response; returns the body's length.
async fn send_one(sender: &mut SendRequest<Full<Bytes>>, target: &Target) -> Result<u64, Failure> {
    let connection =
        |e: hyper::Error| Failure::Connection(format!("{} {}: {e}", target.method, target.path));
    sender.ready().await.map_err(connection)?;
    let request = target
        .request()
        .map_err(|e| Failure::Status(format!("building the request: {e}")))?;
    let response = sender.send_request(request).await.map_err(connection)?;
    let status = response.status();
    let mut body = response.into_body();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(connection)?.into_data() {
            body_bytes += data.len() as u64;
        }
    }
    if status != target.expect {
        return Err(Failure::Status(format!(
            "{} {}: expected {}, got {status}",
            target.method, target.path, target.expect
        )));
    }
    Ok(body_bytes)
}

/// Opens a keep-alive HTTP/1.1 connection (`TCP_NODELAY`) and drives it on a task of its own,
/// which ends when the returned sender is dropped.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The error, if any, shows up on the sender's next request.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 256;
/// Buckets per power of two above [`LINEAR`]: values are kept to 1/128 (0.8 %) relative
/// precision.
const SUB_BUCKETS: u64 = 128;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Enough buckets for every `u64`.
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB_BUCKETS) as usize;

/// A log-linear histogram in the manner of HdrHistogram: exact below 256, then 128 buckets per
/// power of two, so any percentile is within 0.8 % of the true value, in a fixed 60 KiB however
/// many values are recorded.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest value, or 0 when empty.
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// The largest value, or 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at `percent` (0 to 100): the highest value of the bucket holding the
    /// `ceil(percent/100 * count)`-th smallest value (at least the first), capped at the
    /// maximum recorded; 0 when empty.
    pub fn percentile(&self, percent: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((percent.clamp(0.0, 100.0) / 100.0 * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest_in_bucket(bucket).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= 8
    let shift = exponent - SUB_BITS; // >= 1
    let mantissa = value >> shift; // in [SUB_BUCKETS, 2 * SUB_BUCKETS)
    (LINEAR + u64::from(shift - 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

fn highest_in_bucket(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return bucket;
    }
    let shift = (bucket - LINEAR) / SUB_BUCKETS + 1;
    let mantissa = (bucket - LINEAR) % SUB_BUCKETS + SUB_BUCKETS;
    ((mantissa + 1) << shift)
        .wrapping_sub(1)
        .max(mantissa << shift)
}

/// `412 µs`, `1.25 ms`, `2.50 s` for a value in microseconds.
pub fn format_micros(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.2} ms", micros as f64 / 1e3)
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut previous = 0;
        for value in (0..100_000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let bucket = bucket_of(value);
            assert!(bucket < BUCKETS, "{value} -> {bucket}");
            assert!(bucket >= previous, "{value} went back to bucket {bucket}");
            previous = bucket;
            let high = highest_in_bucket(bucket);
            assert!(high >= value, "{value}: bucket {bucket} ends at {high}");
            assert_eq!(bucket_of(high), bucket, "{value}");
            assert!(
                (high - value) as f64 <= value as f64 / 128.0,
                "{value} -> {high}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_the_precision() {
        let mut histogram = Histogram::new();
        for value in 1..=10_000u64 {
            histogram.record(value);
        }
        assert_eq!(histogram.count(), 10_000);
        assert_eq!(histogram.min(), 1);
        assert_eq!(histogram.max(), 10_000);
        let p50 = histogram.percentile(50.0);
        assert!((5_000..=5_040).contains(&p50), "{p50}");
        let p99 = histogram.percentile(99.0);
        assert!((9_900..=9_980).contains(&p99), "{p99}");
        assert_eq!(histogram.percentile(100.0), 10_000);
        assert_eq!(histogram.percentile(0.0), 1);
        assert!((histogram.mean() - 5_000.5).abs() < 1e-9);
    }

    #[test]
    fn merged_histograms_add_up() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!((a.min(), a.max()), (10, 1_000_000));
        assert_eq!(a.percentile(50.0), 20);
        assert_eq!(Histogram::new().percentile(50.0), 0);
    }

    /// A keep-alive HTTP/1.1 server on 127.0.0.1 answering every request with `status`.
    fn fixed_status_server(status: &'static str) -> SocketAddr {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                            if stream.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn load_against(status: &'static str) -> LoadReport {
        let addr = fixed_status_server(status);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let target = Target::new(addr, Method::HEAD, "/v2/a/manifests/b");
        let options = LoadOptions {
            connections: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
        };
        runtime.block_on(run(&target, &options)).expect("load runs")
    }

    #[test]
    fn expected_statuses_are_counted_and_timed() {
        let report = load_against("200 OK");
        assert!(report.requests > 0);
        assert_eq!(report.latency.count(), report.requests);
        assert_eq!(report.total_errors(), 0, "{:?}", report.first_error);
    }

    #[test]
    fn other_statuses_are_errors() {
        let report = load_against("404 Not Found");
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0 && report.warmup_errors > 0);
        let first = report.first_error.expect("an error is kept");
        assert!(first.contains("expected 200 OK, got 404"), "{first}");
    }

    #[test]
    fn micros_are_shown_in_a_readable_unit() {
        assert_eq!(format_micros(412), "412 µs");
        assert_eq!(format_micros(1_250), "1.25 ms");
        assert_eq!(format_micros(2_500_000), "2.50 s");
    }
}
