//! A value that tasks can wait on, woken in a fixed order.
//!
//! Not `tokio::sync::watch`: tokio's watch channel spreads its waiters over several `Notify`s
//! chosen with a thread-local random generator seeded from a process-wide counter, so the order
//! in which waiters wake differs between two runs in one process and a simulated run would not
//! replay. `Notify` wakes its waiters in the order they began waiting.

use std::sync::Mutex;

use tokio::sync::Notify;

pub struct Watch<T> {
    value: Mutex<T>,
    changed: Notify,
}

impl<T: Clone> Watch<T> {
    pub fn new(value: T) -> Watch<T> {
        Watch {
            value: Mutex::new(value),
            changed: Notify::new(),
        }
    }

    pub fn get(&self) -> T {
        self.value.lock().expect("watch poisoned").clone()
    }

    /// Looks at the value without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value.lock().expect("watch poisoned"))
    }

    /// Replaces the value and wakes every waiter.
    pub fn set(&self, value: T) {
        *self.value.lock().expect("watch poisoned") = value;
        self.changed.notify_waiters();
    }

    /// Changes the value in place and wakes every waiter.
    pub fn modify(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.value.lock().expect("watch poisoned"));
        self.changed.notify_waiters();
    }

    /// Waits until `ready` holds for the value; returns the value that satisfied it.
    pub async fn wait_until(&self, mut ready: impl FnMut(&T) -> bool) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register before looking, so a change between the look and the wait is not missed.
            notified.as_mut().enable();
            // Copied only once it is the answer: a waiter looks at every change.
            if let Some(value) = self.read(|v| ready(v).then(|| v.clone())) {
                return value;
            }
            notified.await;
        }
    }

    /// Waits for the next change (or returns at once if one happens while registering).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
