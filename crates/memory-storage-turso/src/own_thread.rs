//! A thread of the store's own (the writer, the checkpointer), joined when its handle is
//! dropped: once the store is gone, so is its hold on the file.

use memory_core::{ErrorKind, StorageError};

/// Put it after the channel that feeds the thread in its owner's fields: fields drop in
/// order, so the channel closes (and the thread's loop ends) before the join.
pub(crate) struct OwnThread(Option<std::thread::JoinHandle<()>>);

impl OwnThread {
    /// Starts `run` on a thread named `name`.
    pub(crate) fn spawn(
        name: &'static str,
        run: impl FnOnce() + Send + 'static,
    ) -> Result<Self, StorageError> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .map(|handle| OwnThread(Some(handle)))
            .map_err(|e| {
                StorageError::with_source(ErrorKind::Unavailable, format!("starting {name}"), e)
            })
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        // The thread itself can hold the last handle (a writer that upgraded its pool).
        if let Some(handle) = self.0.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}
