//! The strict module loader: names from module paths, PyTorch layout, one report of
//! everything that does not match.

use aigc_core::burn::module::Module;
use aigc_core::burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use aigc_core::burn::tensor::Device;
use aigc_core::weights::{LoadOptions, SafetensorsFile, load_module};
use aigc_core::{Error, parse_device};

#[derive(Module, Debug)]
struct Block {
    proj: Linear,
    norm: LayerNorm,
}

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Block>,
    head: Linear,
}

fn net(device: &Device) -> Net {
    Net {
        layers: (0..2)
            .map(|_| Block {
                proj: LinearConfig::new(3, 2).init(device),
                norm: LayerNormConfig::new(2).init(device),
            })
            .collect(),
        head: LinearConfig::new(2, 4).with_bias(false).init(device),
    }
}

/// Tensors as PyTorch would save `Net`: Linear weights `[out, in]`, norms `weight`/`bias`.
fn torch_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut t = Vec::new();
    for i in 0..2 {
        let base = i as f32 * 100.0;
        t.push((
            format!("model.layers.{i}.proj.weight"),
            vec![2, 3],
            (0..6).map(|k| base + k as f32).collect(),
        ));
        t.push((format!("model.layers.{i}.proj.bias"), vec![2], vec![base + 10.0, base + 11.0]));
        t.push((format!("model.layers.{i}.norm.weight"), vec![2], vec![base + 20.0, base + 21.0]));
        t.push((format!("model.layers.{i}.norm.bias"), vec![2], vec![base + 30.0, base + 31.0]));
    }
    t.push(("model.head.weight".into(), vec![4, 2], (0..8).map(|k| 50.0 + k as f32).collect()));
    t
}

fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> SafetensorsFile {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let file = safetensors::serialize(views, None).unwrap();
    SafetensorsFile::from_bytes("net.safetensors", file).unwrap()
}

fn values(t: aigc_core::burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn options() -> LoadOptions<'static> {
    LoadOptions::pytorch().rename(|p| format!("model.{p}"))
}

#[test]
fn loads_pytorch_layout_by_reference_names() {
    let device = parse_device("flex").unwrap();
    let file = safetensors(&torch_tensors());
    let net = load_module(net(&device), &file, &options()).unwrap();
    // Linear weights are transposed from [out, in] to burn's [in, out].
    assert_eq!(values(net.layers[1].proj.weight.val()), [100.0, 103.0, 101.0, 104.0, 102.0, 105.0]);
    let bias = net.layers[1].proj.bias.as_ref().unwrap().val();
    assert_eq!(bias.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), [110.0, 111.0]);
    let gamma = net.layers[0].norm.gamma.val();
    assert_eq!(gamma.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), [20.0, 21.0]);
    assert_eq!(values(net.head.weight.val()), [50.0, 52.0, 54.0, 56.0, 51.0, 53.0, 55.0, 57.0]);
}

#[test]
fn reports_every_mismatch_at_once() {
    let device = parse_device("flex").unwrap();
    let mut tensors = torch_tensors();
    tensors.retain(|(n, _, _)| n != "model.layers.0.norm.bias" && n != "model.layers.1.proj.bias");
    tensors.push(("model.extra.weight".into(), vec![1], vec![0.0]));
    for t in tensors.iter_mut().filter(|t| t.0 == "model.head.weight") {
        *t = (t.0.clone(), vec![2, 4], t.2.clone());
    }
    let file = safetensors(&tensors);
    let Err(Error::Load(report)) = load_module(net(&device), &file, &options()) else {
        panic!("a mismatched file loaded");
    };
    assert_eq!(report.missing, ["model.layers.0.norm.bias", "model.layers.1.proj.bias"]);
    assert_eq!(report.unexpected, ["model.extra.weight"]);
    assert_eq!(report.misshaped, [("model.head.weight".to_string(), vec![4, 2], vec![2, 4])]);
    let text = Error::Load(report).to_string();
    for needle in
        ["net.safetensors", "2 missing", "1 unexpected", "1 misshaped", "model.head.weight"]
    {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }

    // Declared-optional and declared-ignored tensors are not errors.
    let opts = options().optional(|n| n.ends_with("bias")).ignore(|n| n.starts_with("model.extra"));
    let mut fixed = tensors.clone();
    for t in fixed.iter_mut().filter(|t| t.0 == "model.head.weight") {
        t.1 = vec![4, 2];
    }
    load_module(net(&device), &safetensors(&fixed), &opts).unwrap();
}
