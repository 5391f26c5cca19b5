//! Request bodies that cannot hold a request open forever: [`GuardedBody`] ends a body with an
//! error when the client sends nothing for a while, or when the server is stopping. The handler
//! then sees its body fail as if the client had gone away: an upload keeps what arrived and stays
//! resumable from its `Range`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::body::BoxError;

/// Why a [`GuardedBody`] was ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyCut {
    /// The client sent nothing for this long.
    #[error("the client sent no data for {0:?}")]
    Idle(Duration),
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
}

/// What guards every request body of a server: the idle limit, and the token cancelled when the
/// server stops waiting for bodies. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BodyGuard {
    idle: Duration,
    stop: CancellationToken,
}

impl BodyGuard {
    /// Bodies end after `idle` without data, or once `stop` is cancelled.
    pub fn new(idle: Duration, stop: CancellationToken) -> BodyGuard {
        BodyGuard { idle, stop }
    }

    /// `body`, guarded.
    pub fn guard<B>(&self, body: B) -> GuardedBody<B> {
        GuardedBody {
            inner: body,
            idle: self.idle,
            stop: self.stop.clone(),
            deadline: None,
            stopping: None,
        }
    }
}

/// A request body ended with a [`BodyCut`] error when its client sends nothing for the guard's
/// idle limit or the server stops. The timer and the stop signal are set up only once the body
/// is read and has to wait, so requests whose bodies are never read cost nothing.
pub struct GuardedBody<B> {
    inner: B,
    idle: Duration,
    stop: CancellationToken,
    deadline: Option<Pin<Box<Sleep>>>,
    stopping: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(deadline) = this.deadline.as_mut() {
                deadline.as_mut().reset(Instant::now() + this.idle);
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let stopping = this
            .stopping
            .get_or_insert_with(|| Box::pin(this.stop.clone().cancelled_owned()));
        if stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyCut::Stopping.into())));
        }
        let idle = this.idle;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyCut::Idle(idle).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, BoxError>>;
    type Sender = tokio::sync::mpsc::UnboundedSender<Result<Frame<Bytes>, BoxError>>;

    /// A body whose frames the test sends one by one.
    fn held() -> (Sender, StreamBody<Frames>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let frame = receiver.recv().await?;
            Some((frame, receiver))
        });
        (sender, StreamBody::new(Box::pin(stream) as Frames))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_idle_for_the_limit_ends_with_an_error_after_what_arrived() {
        let guard = BodyGuard::new(Duration::from_secs(60), CancellationToken::new());
        let (sender, body) = held();
        let mut body = guard.guard(body);
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .expect("send");
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), "abc");
        let started = Instant::now();
        let error = body.frame().await.expect("an end").expect_err("cut");
        assert_eq!(
            error.downcast_ref::<BodyCut>(),
            Some(&BodyCut::Idle(Duration::from_secs(60)))
        );
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn data_arriving_keeps_a_slow_body_alive() {
        let guard = BodyGuard::new(Duration::from_secs(10), CancellationToken::new());
        let (sender, body) = held();
        let mut body = guard.guard(body);
        let feeding = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                sender
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .expect("send");
            }
        });
        for _ in 0..5 {
            let frame = body.frame().await.expect("a frame").expect("data");
            assert_eq!(frame.into_data().expect("data"), "x");
        }
        feeding.await.expect("feeder");
        assert!(body.frame().await.is_none(), "the body ended normally");
    }

    #[tokio::test]
    async fn stopping_ends_a_waiting_body() {
        let stop = CancellationToken::new();
        let guard = BodyGuard::new(Duration::from_secs(3600), stop.clone());
        let (_sender, body) = held();
        let mut body = guard.guard(body);
        let reading = tokio::spawn(async move { body.frame().await });
        stop.cancel();
        let error = reading
            .await
            .expect("join")
            .expect("an end")
            .expect_err("cut");
        assert_eq!(error.downcast_ref::<BodyCut>(), Some(&BodyCut::Stopping));
    }
}
