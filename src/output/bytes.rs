//! Numbers to and from the little-endian bytes of a safetensors file: one typed, explicit
//! conversion for the weights and the checkpoint writers and readers (no pointer casts, so the
//! files are the same on any host).

/// A number type stored in safetensors files as its little-endian bytes.
pub(crate) trait LeBytes: Copy {
    /// Bytes per value.
    const SIZE: usize;
    /// The encoding, `[u8; SIZE]`.
    type Bytes: AsRef<[u8]>;
    /// The little-endian bytes of `self`.
    fn to_le(self) -> Self::Bytes;
    /// The value of `SIZE` little-endian bytes.
    ///
    /// # Panics
    /// If `bytes` is not `SIZE` long.
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! le_bytes_impl {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            type Bytes = [u8; std::mem::size_of::<$t>()];
            #[inline]
            fn to_le(self) -> Self::Bytes {
                self.to_le_bytes()
            }
            #[inline]
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("LeBytes::SIZE bytes"))
            }
        }
    )*};
}

le_bytes_impl!(u16, u32, u64, f32, f64);

/// The little-endian bytes of `values`, in order.
pub(crate) fn le_bytes<T: LeBytes>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    for v in values {
        out.extend_from_slice(v.to_le().as_ref());
    }
    out
}

/// The values whose little-endian bytes `bytes` holds, in order; a trailing partial value is
/// ignored (safetensors has already checked that tensor sizes are exact).
pub(crate) fn from_le_bytes<'a, T: LeBytes + 'a>(bytes: &'a [u8]) -> impl Iterator<Item = T> + 'a {
    bytes.chunks_exact(T::SIZE).map(T::from_le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_little_endian() {
        assert_eq!(le_bytes(&[1.0f32, -2.0]), [0, 0, 128, 63, 0, 0, 0, 192]);
        assert_eq!(le_bytes(&[1.0f64]), [0, 0, 0, 0, 0, 0, 240, 63]);
        assert_eq!(le_bytes(&[0x0102_0304u32]), [4, 3, 2, 1]);
        assert_eq!(
            le_bytes(&[0x0102_0304_0506_0708u64]),
            [8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(le_bytes(&[0x0102u16]), [2, 1]);
        assert!(le_bytes::<f32>(&[]).is_empty());
    }

    #[test]
    fn round_trips_every_bit_pattern_kind() {
        let f = [
            0.0f32,
            -0.0,
            f32::MIN_POSITIVE / 2.0,
            f32::INFINITY,
            f32::NAN,
            1e30,
        ];
        let back: Vec<f32> = from_le_bytes(&le_bytes(&f)).collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&f));
        let d = [f64::MAX, -1e-300, 0.1];
        assert_eq!(from_le_bytes::<f64>(&le_bytes(&d)).collect::<Vec<_>>(), d);
        let u = [u64::MAX, 1 << 40, 0];
        assert_eq!(from_le_bytes::<u64>(&le_bytes(&u)).collect::<Vec<_>>(), u);
        let w = [u32::MAX, 7];
        assert_eq!(from_le_bytes::<u32>(&le_bytes(&w)).collect::<Vec<_>>(), w);
        // A trailing partial value is ignored.
        assert_eq!(
            from_le_bytes::<u32>(&[1, 0, 0, 0, 9]).collect::<Vec<_>>(),
            [1]
        );
    }
}
