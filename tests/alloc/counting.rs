//! The allocation tests' global allocator: it forwards to the system's and
//! calls the binary's `note` before each allocation, so each test decides
//! what counts (this thread while asked, or the thread named `media`).
//! A binary declares `#[global_allocator] static GLOBAL: Counting = Counting(note);`.

use std::alloc::{GlobalAlloc, Layout, System};

pub struct Counting(pub fn());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (self.0)();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        (self.0)();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (self.0)();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}
