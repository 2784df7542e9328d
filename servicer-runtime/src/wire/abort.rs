//! [`AbortOnDrop`]: a task that lives no longer than its owner.

/// Aborts a spawned task when dropped: the task sending a call's requests stops when the call is
/// dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    pub(crate) fn new(task: tokio::task::JoinHandle<T>) -> Self {
        AbortOnDrop(Some(task))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
