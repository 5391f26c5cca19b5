//! Request and response bodies: request bodies become streams of `Bytes` for the content layer,
//! and responses are empty, small (JSON, manifests) or streamed from storage.

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

/// The error type carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The body of every response of the service.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A response with `status` and no body (`Content-Length: 0`).
pub(crate) fn empty_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(
        Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// A response with `status` and the whole `content` as body, typed `content_type`.
pub(crate) fn full_response(
    status: StatusCode,
    content_type: HeaderValue,
    content: Bytes,
) -> Response<ResponseBody> {
    let length = content.len();
    let mut response = Response::new(
        Full::new(content)
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, json: Vec<u8>) -> Response<ResponseBody> {
    full_response(
        status,
        HeaderValue::from_static("application/json"),
        Bytes::from(json),
    )
}

/// A response whose body streams `chunks`; the caller sets `Content-Length`.
pub(crate) fn streamed_response<S, E>(status: StatusCode, chunks: S) -> Response<ResponseBody>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let body = StreamBody::new(chunks.map_ok(Frame::data).map_err(Into::into));
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = status;
    response
}

/// The data frames of a request body as a stream of `Bytes`, for the content layer.
pub(crate) fn request_stream<B>(body: B) -> impl Stream<Item = Result<Bytes, BoxError>> + Send
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.into_data_stream()
        .map(|chunk| chunk.map_err(Into::into))
}

/// Reads a whole request body of at most `limit` bytes. `Ok(None)` when it is longer.
pub(crate) async fn collect_limited<B>(body: B, limit: usize) -> Result<Option<Bytes>, BoxError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut stream = std::pin::pin!(request_stream(body));
    let mut collected = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if collected.len() + chunk.len() > limit {
            return Ok(None);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Some(collected.freeze()))
}
