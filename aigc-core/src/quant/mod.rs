//! GGML block-quantized types and their exact dequantization.
//!
//! Each `dequantize_*` function reproduces ggml's reference dequantizer (`ggml-quants.c`)
//! operation for operation, so that the f32 values are bit-identical to llama.cpp's and to
//! the Python `gguf` package's (checked by fixtures in `tools/fixtures/gguf/`).

mod dequant;
pub mod kernels;
mod pool;
mod q8;

pub use dequant::*;

use crate::error::{Error, Result};

/// Values per block of the K-quant ("super-block") types.
pub const QK_K: usize = 256;

macro_rules! ggml_types {
    ($($variant:ident = $id:literal, $name:literal, $block:expr, $size:expr;)*) => {
        /// A GGML tensor type as numbered in GGUF files (`ggml_type`).
        ///
        /// Plain types (F32, F16, BF16, integers) are listed too, because GGUF stores every
        /// tensor's type in this one enumeration; [`DType`](crate::weights::DType) maps plain
        /// ones to its own variants and keeps the block types as `DType::Quant`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        #[non_exhaustive]
        pub enum GgmlType {
            $(
                #[doc = concat!("`GGML_TYPE_", $name, "` (", stringify!($id), ")")]
                $variant,
            )*
        }

        impl GgmlType {
            /// The type with this GGUF id, if it is one this library knows.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(GgmlType::$variant),)*
                    _ => None,
                }
            }

            /// The GGUF id.
            pub fn id(self) -> u32 {
                match self { $(GgmlType::$variant => $id,)* }
            }

            /// The name used by ggml and the `gguf` package (`"Q4_K"`, ...).
            pub fn name(self) -> &'static str {
                match self { $(GgmlType::$variant => $name,)* }
            }

            /// Values per block.
            pub fn block_size(self) -> usize {
                match self { $(GgmlType::$variant => $block,)* }
            }

            /// Bytes per block.
            pub fn type_size(self) -> usize {
                match self { $(GgmlType::$variant => $size,)* }
            }

            /// Every known type.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant,)*];
        }
    };
}

// Block sizes and byte sizes from ggml's `type_traits` table.
ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    Q4_0 = 2, "Q4_0", 32, 18;
    Q4_1 = 3, "Q4_1", 32, 20;
    Q5_0 = 6, "Q5_0", 32, 22;
    Q5_1 = 7, "Q5_1", 32, 24;
    Q8_0 = 8, "Q8_0", 32, 34;
    Q8_1 = 9, "Q8_1", 32, 36;
    Q2_K = 10, "Q2_K", QK_K, 84;
    Q3_K = 11, "Q3_K", QK_K, 110;
    Q4_K = 12, "Q4_K", QK_K, 144;
    Q5_K = 13, "Q5_K", QK_K, 176;
    Q6_K = 14, "Q6_K", QK_K, 210;
    Q8_K = 15, "Q8_K", QK_K, 292;
    IQ2_XXS = 16, "IQ2_XXS", QK_K, 66;
    IQ2_XS = 17, "IQ2_XS", QK_K, 74;
    IQ3_XXS = 18, "IQ3_XXS", QK_K, 98;
    IQ1_S = 19, "IQ1_S", QK_K, 50;
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    IQ3_S = 21, "IQ3_S", QK_K, 110;
    IQ2_S = 22, "IQ2_S", QK_K, 82;
    IQ4_XS = 23, "IQ4_XS", QK_K, 136;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", QK_K, 56;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", QK_K, 54;
    TQ2_0 = 35, "TQ2_0", QK_K, 66;
    MXFP4 = 39, "MXFP4", 32, 17;
}

impl GgmlType {
    /// Whether [`dequantize`] implements this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16
                | BF16
                | F64
                | I8
                | I16
                | I32
                | I64
                | Q4_0
                | Q4_1
                | Q5_0
                | Q5_1
                | Q8_0
                | Q8_1
                | Q2_K
                | Q3_K
                | Q4_K
                | Q5_K
                | Q6_K
                | Q8_K
                | IQ4_NL
                | IQ4_XS
        )
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Dequantizes whole blocks of `ty` from `src` into `dst`.
///
/// `src` must hold a whole number of blocks and `dst` exactly `block_size` values per block.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    if !src.len().is_multiple_of(ts) || dst.len() != src.len() / ts * bs {
        return Err(Error::invalid_argument(
            "dst",
            format!(
                "{ty}: {} bytes is not a whole number of {ts}-byte blocks, or {} values do not match",
                src.len(),
                dst.len()
            ),
        ));
    }
    use GgmlType::*;
    let f: fn(&[u8], &mut [f32]) = match ty {
        F32 => |b, y| y[0] = f32::from_le_bytes(b.try_into().unwrap()),
        F64 => |b, y| y[0] = f64::from_le_bytes(b.try_into().unwrap()) as f32,
        F16 => |b, y| y[0] = f16(b),
        BF16 => |b, y| y[0] = half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32(),
        I8 => |b, y| y[0] = b[0] as i8 as f32,
        I16 => |b, y| y[0] = i16::from_le_bytes(b.try_into().unwrap()) as f32,
        I32 => |b, y| y[0] = i32::from_le_bytes(b.try_into().unwrap()) as f32,
        I64 => |b, y| y[0] = i64::from_le_bytes(b.try_into().unwrap()) as f32,
        Q4_0 => dequantize_q4_0,
        Q4_1 => dequantize_q4_1,
        Q5_0 => dequantize_q5_0,
        Q5_1 => dequantize_q5_1,
        Q8_0 => dequantize_q8_0,
        Q8_1 => dequantize_q8_1,
        Q2_K => dequantize_q2_k,
        Q3_K => dequantize_q3_k,
        Q4_K => dequantize_q4_k,
        Q5_K => dequantize_q5_k,
        Q6_K => dequantize_q6_k,
        Q8_K => dequantize_q8_k,
        IQ4_NL => dequantize_iq4_nl,
        IQ4_XS => dequantize_iq4_xs,
        other => {
            return Err(Error::unsupported(
                "GGML type",
                format!("dequantization of {other} is not implemented"),
            ));
        }
    };
    for (block, out) in src.chunks_exact(ts).zip(dst.chunks_exact_mut(bs)) {
        f(block, out);
    }
    Ok(())
}

/// An IEEE half from two little-endian bytes, converted exactly; inlined plain arithmetic
/// (the `half` crate dispatches at run time, which costs a call per block in hot loops).
#[inline(always)]
pub(crate) fn f16(b: &[u8]) -> f32 {
    let h = u16::from_le_bytes([b[0], b[1]]) as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1F;
    let man = h & 0x3FF;
    let bits = if exp == 0x1F {
        sign | 0x7F80_0000 | (man << 13)
    } else if exp != 0 {
        sign | ((exp + 112) << 23) | (man << 13)
    } else if man == 0 {
        sign
    } else {
        // Subnormal: man * 2^-24, exact in f32.
        let v = man as f32 * (1.0 / 16_777_216.0);
        return if sign != 0 { -v } else { v };
    };
    f32::from_bits(bits)
}
