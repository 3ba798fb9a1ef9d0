//! Memory a script builds, counted per thread: the process's allocator notes every
//! allocation and release against the thread that makes it, so values built through the API
//! (edits holding large strings, arrays of nodes) count as much as the script's own strings.
//! The engine's progress hook compares the growth since the hook call began with the limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting bytes per thread.
pub struct CountingAllocator;

thread_local! {
    static NET_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count(bytes: i64) {
    // `try_with`: a thread being torn down still allocates; it is simply not counted.
    let _ = NET_BYTES.try_with(|n| n.set(n.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to `System`; the counter allocates nothing.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes this thread holds now (allocated minus released; may be negative when it frees what
/// others made).
pub fn thread_bytes() -> i64 {
    NET_BYTES.try_with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_allocations_are_counted_and_released() {
        let before = thread_bytes();
        let big = vec![7u8; 8 << 20];
        assert!(thread_bytes() - before >= 8 << 20);
        drop(big);
        assert!(thread_bytes() - before < 1 << 20);
    }
}
