//! The fused ops' CUDA kernels against the composite candle ops on the GPU and
//! against their CPU forms: values and gradients within a relative error of 1e-5
//! (the largest difference over the largest magnitude), over shapes that include
//! odd sizes. Built only with the `cuda` feature; they need a CUDA GPU.

use candle_core::{Device, Result, Tensor};

use super::{class_ids, random, value_and_grads};
use crate::fused::attention::causal_attention_composite;
use crate::fused::batch_norm::batch_norm_composite;
use crate::fused::loss::{cross_entropy_composite, embedding_composite};
use crate::fused::*;

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA GPU (these tests are built with `cuda` only)")
}

/// Largest |a - b| over the largest |b| (0 when both are zero everywhere).
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let diff = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = b.iter().map(|b| b.abs()).fold(0f32, f32::max);
    if scale == 0.0 { diff } else { diff / scale }
}

/// The op on the GPU agrees with the composite ops on the GPU and with the op
/// on the CPU, in value and in every input's gradient. `f` gets the inputs and
/// the device's copy of `fixed` (ids, targets).
fn assert_same_on_gpu(
    what: &str,
    inputs: &[Tensor],
    fixed: Option<&Tensor>,
    fused: impl Fn(&[Tensor], Option<&Tensor>) -> Result<Tensor>,
    composite: impl Fn(&[Tensor], Option<&Tensor>) -> Result<Tensor>,
) {
    let device = gpu();
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| t.to_device(&device).unwrap()).collect();
    let fixed_gpu = fixed.map(|t| t.to_device(&device).unwrap());
    let (out, grads) = value_and_grads(&on_gpu, |t| fused(t, fixed_gpu.as_ref()));
    assert!(out.device().is_cuda(), "{what}: the output stays on the GPU");
    let references = [
        (
            "the composite ops on the GPU",
            value_and_grads(&on_gpu, |t| composite(t, fixed_gpu.as_ref())),
        ),
        ("the CPU op", value_and_grads(inputs, |t| fused(t, fixed))),
    ];
    for (reference, (ref_out, ref_grads)) in references {
        let err = relative_error(&out, &ref_out);
        assert!(err < 1e-5, "{what}: output differs from {reference} by {err:e} (relative)");
        for (i, (a, b)) in grads.iter().zip(&ref_grads).enumerate() {
            let err = relative_error(a, b);
            assert!(err < 1e-5, "{what}: gradient {i} differs from {reference} by {err:e}");
        }
    }
}

#[test]
fn causal_softmax_kernel_matches_masked_softmax() {
    for (i, shape) in
        [[1, 1, 1], [2, 7, 7], [3, 33, 33], [2, 128, 128], [1, 130, 130]].iter().enumerate()
    {
        let scores = (random(shape, i as u64) * 3.0).unwrap();
        assert_same_on_gpu(
            &format!("causal softmax {shape:?}"),
            &[scores],
            None,
            |t, _| causal_softmax(&t[0], 0.37),
            |t, _| causal_softmax_composite(&t[0], 0.37),
        );
    }
}

#[test]
fn layer_norm_kernel_matches_layer_norm_slow() {
    for (i, (rows, d)) in [(1, 1), (3, 5), (17, 31), (64, 256), (9, 257), (5, 1000), (300, 64)]
        .into_iter()
        .enumerate()
    {
        let inputs = [
            (random(&[rows, d], i as u64) * 2.0).unwrap(),
            random(&[d], 100 + i as u64),
            random(&[d], 200 + i as u64),
        ];
        assert_same_on_gpu(
            &format!("layer norm {rows}x{d}"),
            &inputs,
            None,
            |t, _| layer_norm(&t[0], &t[1], &t[2], 1e-5),
            |t, _| layer_norm_composite(&t[0], &t[1], &t[2], 1e-5),
        );
    }
}

#[test]
fn cross_entropy_kernel_matches_log_softmax_and_gather() {
    for (i, (rows, classes, smoothing)) in
        [(1, 2, 0.0), (7, 10, 0.1), (513, 65, 0.0), (33, 1001, 0.2), (4096, 10, 0.1)]
            .into_iter()
            .enumerate()
    {
        let logits = (random(&[rows, classes], i as u64) * 4.0).unwrap();
        let targets = class_ids(&[rows], classes, 50 + i as u64);
        assert_same_on_gpu(
            &format!("cross-entropy {rows}x{classes} smoothing {smoothing}"),
            &[logits],
            Some(&targets),
            |t, ys| cross_entropy(&t[0], ys.unwrap(), smoothing),
            |t, ys| cross_entropy_composite(&t[0], ys.unwrap(), smoothing),
        );
    }
}

#[test]
fn embedding_kernel_matches_index_select() {
    for (i, (vocab, d, shape)) in
        [(3, 1, vec![5]), (11, 17, vec![4, 6]), (65, 256, vec![64, 128]), (1000, 33, vec![7, 3])]
            .into_iter()
            .enumerate()
    {
        let table = random(&[vocab, d], i as u64);
        let ids = class_ids(&shape, vocab, 70 + i as u64);
        assert_same_on_gpu(
            &format!("embedding {vocab}x{d} of {shape:?}"),
            &[table],
            Some(&ids),
            |t, ids| embedding(&t[0], ids.unwrap()),
            |t, ids| embedding_composite(&t[0], ids.unwrap()),
        );
    }
}

#[test]
fn max_pool_kernel_matches_the_window_maximum() {
    for (i, shape) in [[2, 3, 8, 8], [2, 3, 7, 9], [5, 4, 28, 28], [1, 1, 1, 3]].iter().enumerate()
    {
        let x = random(shape, i as u64);
        assert_same_on_gpu(
            &format!("max pool {shape:?}"),
            &[x],
            None,
            |t, _| max_pool_2x2(&t[0]),
            |t, _| max_pool_2x2_composite(&t[0]),
        );
    }
}

#[test]
fn batch_norm_kernels_match_the_composite_and_the_cpu_op() {
    for (i, shape) in
        [[3, 4, 5, 5], [16, 128, 14, 14], [1, 1, 1, 9], [33, 7, 3, 1]].iter().enumerate()
    {
        let c = shape[0];
        let seed = 80 + 3 * i as u64;
        let inputs = [random(shape, seed), random(&[c], seed + 1), random(&[c], seed + 2)];
        assert_same_on_gpu(
            &format!("batch norm (training) {shape:?}"),
            &inputs,
            None,
            |t, _| batch_norm(&t[0], &batch_stats(&t[0])?, &t[1], &t[2], 1e-5, true),
            |t, _| batch_norm_composite(&t[0], &batch_stats(&t[0])?, &t[1], &t[2], 1e-5, true),
        );
        let running = super::running_stats(c, seed);
        assert_same_on_gpu(
            &format!("batch norm (evaluation) {shape:?}"),
            &inputs,
            Some(&running),
            |t, r| batch_norm(&t[0], r.unwrap(), &t[1], &t[2], 1e-5, false),
            |t, r| batch_norm_composite(&t[0], r.unwrap(), &t[1], &t[2], 1e-5, false),
        );
    }
}

#[test]
fn attention_on_the_gpu_matches_the_cpu_op() {
    // On the GPU, attention is candle's matmuls around the causal softmax kernel.
    let qkv = random(&[2, 19, 3 * 12], 5);
    assert_same_on_gpu(
        "causal attention",
        &[qkv],
        None,
        |t, _| causal_attention(&t[0], 3, None, Precision::F32),
        |t, _| causal_attention_composite(&t[0], 3, None, Precision::F32),
    );
}

#[test]
fn dropout_kernel_draws_the_cpu_mask() {
    for (i, shape) in [[1, 1], [3, 7], [64, 1000], [5, 4099]].iter().enumerate() {
        let x = random(shape, i as u64);
        assert_same_on_gpu(
            &format!("dropout {shape:?}"),
            &[x],
            None,
            |t, _| dropout(&t[0], 42 + i as u64, drop_threshold(0.3), 1.0 / 0.7),
            |t, _| dropout_composite(&t[0], 42 + i as u64, drop_threshold(0.3), 1.0 / 0.7),
        );
    }
}

#[test]
fn activation_kernels_match_candles_activations() {
    // Shapes of more than a few elements: the CPU op's erf is within 1e-6 of the
    // exact one in absolute terms, which is not 1e-5 of one tiny value.
    for (i, shape) in [[3, 5], [7, 13], [64, 4099]].iter().enumerate() {
        let x = (random(shape, i as u64) * 4.0).unwrap();
        assert_same_on_gpu(
            &format!("relu {shape:?}"),
            std::slice::from_ref(&x),
            None,
            |t, _| relu(&t[0]),
            |t, _| t[0].relu(),
        );
        // candle's CUDA gelu_erf is itself only within about 2e-5 of the exact
        // function, so GELU's reference is candle's CPU form (and the CPU op).
        let device = gpu();
        let (out, grads) = value_and_grads(&[x.to_device(&device).unwrap()], |t| gelu(&t[0]));
        for (reference, (ref_out, ref_grads)) in [
            (
                "candle's gelu_erf on the CPU",
                value_and_grads(std::slice::from_ref(&x), |t| t[0].gelu_erf()),
            ),
            ("the CPU op", value_and_grads(std::slice::from_ref(&x), |t| gelu(&t[0]))),
        ] {
            let err = relative_error(&out, &ref_out);
            assert!(err < 1e-5, "gelu {shape:?}: output differs from {reference} by {err:e}");
            let err = relative_error(&grads[0], &ref_grads[0]);
            assert!(err < 1e-5, "gelu {shape:?}: gradient differs from {reference} by {err:e}");
        }
    }
}

#[test]
fn bias_kernels_match_broadcast_add() {
    for (i, (shape, tail)) in
        [(vec![1], 1), (vec![7, 13], 1), (vec![64, 128, 385], 1), (vec![4, 130, 96], 2)]
            .into_iter()
            .enumerate()
    {
        let bias_shape = shape[shape.len() - tail..].to_vec();
        let inputs = [random(&shape, i as u64), random(&bias_shape, 10 + i as u64)];
        assert_same_on_gpu(
            &format!("add_trailing {shape:?}"),
            &inputs,
            None,
            |t, _| add_trailing(&t[0], &t[1]),
            |t, _| t[0].broadcast_add(&t[1]),
        );
    }
}

#[test]
fn im2col_kernels_match_stacked_windows() {
    for (i, (shape, k, p)) in
        [([3, 2, 7, 7], 3, 1), ([2, 3, 6, 5], 3, 0), ([1, 2, 4, 4], 5, 2), ([32, 64, 14, 14], 3, 1)]
            .into_iter()
            .enumerate()
    {
        let x = random(&shape, i as u64);
        assert_same_on_gpu(
            &format!("im2col {shape:?} k{k} p{p}"),
            &[x],
            None,
            |t, _| crate::fused::conv::im2col(&t[0], k, p),
            |t, _| crate::fused::conv::im2col_composite(&t[0], k, p),
        );
    }
}

#[test]
fn convolution_on_the_gpu_matches_the_cpu_op() {
    // On the GPU: im2col and per-row bias kernels around candle's matmul.
    let inputs = [random(&[3, 5, 9, 9], 1), random(&[4, 3, 3, 3], 2), random(&[4], 3)];
    assert_same_on_gpu(
        "convolution",
        &inputs,
        None,
        |t, _| conv2d_channels_first(&t[0], &t[1], &t[2], 1, Precision::F32),
        |t, _| crate::fused::conv::conv2d_composite(&t[0], &t[1], &t[2], 1, Precision::F32),
    );
}
