//! Device names, and backends that are not compiled in.

use aigc_core::device::{compiled_backends, default_device_name, device_from_arg_or_env};
use aigc_core::{Error, parse_device};

#[test]
fn parses_compiled_backends_and_names_missing_features() {
    for (name, feature) in
        [("flex", "flex"), ("ndarray", "ndarray"), ("wgpu", "wgpu"), ("cuda:1", "cuda")]
    {
        let backend = name.split(':').next().unwrap();
        match parse_device(name) {
            Ok(_) => assert!(
                compiled_backends().contains(&backend),
                "{name} parsed but is not compiled in"
            ),
            Err(Error::BackendNotCompiled { backend: b, feature: f }) => {
                assert!(!compiled_backends().contains(&backend));
                assert_eq!((b.as_str(), f), (backend, feature));
                let text = parse_device(name).unwrap_err().to_string();
                assert!(text.contains(&format!("feature `{feature}`")), "{text}");
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(compiled_backends().contains(&default_device_name()));
}

#[test]
fn rejects_malformed_names() {
    for bad in ["", "tpu", "flex:0", "cuda:x", "wgpu:discrete", "wgpu:gpu:1", "cuda:0:1"] {
        match parse_device(bad) {
            Err(Error::InvalidArgument { name: "device", reason }) => {
                assert!(reason.contains(bad), "{reason}")
            }
            other => panic!("`{bad}`: {other:?}"),
        }
    }
    // Case and surrounding spaces do not matter.
    assert!(parse_device(" FLEX ").is_ok());
    assert!(device_from_arg_or_env(Some("flex")).is_ok());
}
