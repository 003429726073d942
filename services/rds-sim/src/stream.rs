//! A TCP stream that can be killed from outside: the SSH session sees a reset and the socket
//! is closed with SO_LINGER 0 (an RST on the wire), which is how "drop before/after effect"
//! and reboots look to the client.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Shared kill flag of one connection.
#[derive(Debug, Default)]
pub(crate) struct KillSwitch {
    killed: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    notify: Notify,
}

impl KillSwitch {
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Resolves once [`KillSwitch::kill`] was called.
    pub(crate) async fn killed(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_killed() {
                return;
            }
            n.await;
        }
    }

    fn register(&self, w: &Waker) {
        let mut g = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !g.iter().any(|x| x.will_wake(w)) {
            g.push(w.clone());
        }
    }
}

pub(crate) struct KillableStream {
    inner: TcpStream,
    switch: Arc<KillSwitch>,
}

impl KillableStream {
    pub(crate) fn new(inner: TcpStream, switch: Arc<KillSwitch>) -> Self {
        Self { inner, switch }
    }

    fn dead(&self) -> io::Error {
        // RST instead of FIN when the socket is dropped.
        let _ = self.inner.set_zero_linger();
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection killed by rds-sim",
        )
    }
}

macro_rules! guarded {
    ($self:ident, $cx:ident, $poll:expr) => {{
        if $self.switch.is_killed() {
            return Poll::Ready(Err($self.dead()));
        }
        let r = $poll;
        if r.is_pending() {
            $self.switch.register($cx.waker());
            if $self.switch.is_killed() {
                return Poll::Ready(Err($self.dead()));
            }
        }
        r
    }};
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        guarded!(this, cx, Pin::new(&mut this.inner).poll_read(cx, buf))
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        guarded!(this, cx, Pin::new(&mut this.inner).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        guarded!(this, cx, Pin::new(&mut this.inner).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        guarded!(this, cx, Pin::new(&mut this.inner).poll_shutdown(cx))
    }
}
