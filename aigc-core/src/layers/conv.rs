//! 2-D convolutions and group normalisation, the pieces of convolutional UNets and VAEs.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::weights::WeightLoader;

/// A 2-D convolution with PyTorch's weight layout `[out, in / groups, kh, kw]`, a stride and
/// symmetric zero padding.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A convolution from its tensors.
    pub fn new(weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Self {
        Self { weight, bias, stride: stride.max(1), padding }
    }

    /// `{prefix}.weight` (`[out, in, k, k]`) and `{prefix}.bias` (`[out]`) from `w`.
    pub fn load(
        w: &WeightLoader<'_>,
        prefix: &str,
        [out, inp, k]: [usize; 3],
        stride: usize,
        padding: usize,
    ) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [out, inp, k, k]);
        let bias = w.tensor(&format!("{prefix}.bias"), [out]);
        Self::new(weight, Some(bias), stride, padding)
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Convolves `x` (`[batch, in, h, w]`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options =
            ConvOptions::new([self.stride, self.stride], [self.padding, self.padding], [1, 1], 1);
        conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }
}

/// Group normalisation over `[batch, channels, ...]`: channels split into `groups`, each
/// normalised by its mean and (biased) variance over its channels and positions, then scaled
/// and shifted per channel, as `torch.nn.GroupNorm` computes it in f32.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    groups: usize,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
}

impl GroupNorm {
    /// A norm from its tensors (`weight` and `bias` `[channels]`).
    pub fn new(groups: usize, weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        Self { groups: groups.max(1), weight, bias, eps }
    }

    /// `{prefix}.weight` and `{prefix}.bias` (`[channels]`) from `w`.
    pub fn load(
        w: &WeightLoader<'_>,
        prefix: &str,
        groups: usize,
        channels: usize,
        eps: f64,
    ) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [channels]);
        let bias = w.tensor(&format!("{prefix}.bias"), [channels]);
        Self::new(groups, weight, bias, eps)
    }

    /// Normalises `x` (`[batch, channels, h, w]`; channels a multiple of the groups).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let g = self.groups;
        let grouped = x.reshape([b, g, (c / g) * h * w]);
        let mean = grouped.clone().mean_dim(2);
        let centered = grouped - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = centered * (var + self.eps).sqrt().recip();
        let normed = normed.reshape([b, c, h, w]);
        let scale = self.weight.clone().reshape([1, c, 1, 1]);
        let shift = self.bias.clone().reshape([1, c, 1, 1]);
        normed * scale + shift
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn device() -> burn::tensor::Device {
        crate::parse_device("flex").unwrap()
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn group_norm_matches_a_hand_computation() {
        let d = device();
        // One batch, 4 channels in 2 groups, 1x2 positions.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 14.0], [1, 4, 1, 2]),
            &d,
        );
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 1.0, 1.0], [4]), &d);
        let b = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0, 0.5, 0.0], [4]), &d);
        let y = values(GroupNorm::new(2, w, b, 0.0).forward(x));
        // Group 0: 1..4, mean 2.5, var 1.25; group 1: 10,10,10,14, mean 11, var 3.
        let s0 = 1.25f32.sqrt();
        let s1 = 3f32.sqrt();
        let want = [
            -1.5 / s0,
            -0.5 / s0,
            2.0 * 0.5 / s0,
            2.0 * 1.5 / s0,
            -1.0 / s1 + 0.5,
            -1.0 / s1 + 0.5,
            -1.0 / s1,
            3.0 / s1,
        ];
        for (g, e) in y.iter().zip(want) {
            assert!((g - e).abs() < 1e-5, "{g} vs {e}");
        }
    }

    #[test]
    fn conv_with_padding_sums_the_neighbourhood() {
        let d = device();
        let x = Tensor::<4>::ones([1, 1, 3, 3], &d);
        let conv = Conv2d::new(Tensor::ones([1, 1, 3, 3], &d), None, 1, 1);
        let y = values(conv.forward(x));
        assert_eq!(y, vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
        let strided = Conv2d::new(Tensor::ones([1, 1, 3, 3], &d), None, 2, 1);
        assert_eq!(
            values(strided.forward(Tensor::ones([1, 1, 3, 3], &d))),
            vec![4.0, 4.0, 4.0, 4.0]
        );
    }
}
