//! The bounded queue between Post and the worker. Pushing never waits: when
//! the queue is full the OLDEST event is evicted and handed back so the
//! caller can count it (a fresh event is worth more than a stale one).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::validate::Pending;

pub struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
    capacity: usize,
}

struct Inner {
    items: VecDeque<Pending>,
    closed: bool,
}

/// What a push did.
pub enum Pushed {
    Queued,
    /// Queued, and this oldest event was evicted to make room.
    Evicted(Box<Pending>),
    /// The queue is closed (shutting down); the event was not taken.
    Closed,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(4096)),
                closed: false,
            }),
            notify: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves a consistent VecDeque.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, item: Pending) -> Pushed {
        let evicted = {
            let mut inner = self.lock();
            if inner.closed {
                return Pushed::Closed;
            }
            let evicted = if inner.items.len() >= self.capacity {
                inner.items.pop_front()
            } else {
                None
            };
            inner.items.push_back(item);
            evicted
        };
        // One consumer: notify_one stores a permit if it is not waiting yet.
        self.notify.notify_one();
        match evicted {
            Some(old) => Pushed::Evicted(Box::new(old)),
            None => Pushed::Queued,
        }
    }

    /// The next event; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<Pending> {
        loop {
            {
                let mut inner = self.lock();
                if let Some(item) = inner.items.pop_front() {
                    return Some(item);
                }
                if inner.closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Stops accepting; the worker drains what is left, then `pop` ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Removes everything still queued (for counting at a forced stop).
    pub fn take_all(&self) -> Vec<Pending> {
        self.lock().items.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
