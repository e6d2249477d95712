//! Fuzzes the onnx reader: any input must give `Ok` or `Err`, never a panic, and every
//! tensor of an accepted file must read.
#![no_main]

use aigc_core::weights::{OnnxFile, TensorSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = OnnxFile::from_bytes("fuzz.onnx", data.to_vec()) {
        for name in file.tensor_names() {
            if let Ok(view) = file.tensor(&name) {
                // Bounded, so that a valid header with a large tensor stays fast.
                let _ = view.to_f32_prefix(4096);
            }
        }
    }
});
