//! int8 post-training quantization of a linear layer.
//!
//! Weights: per output channel, symmetric: row o is stored as `round(w / s_o)` in
//! [-127, 127] with `s_o = max |w_o| / 127`, so each weight is off by at most
//! `s_o / 2`. Inputs: quantized the same way per example as they arrive (dynamic),
//! with `s_x = max |x| / 127`. The product runs in integers (i8 x i8 summed in
//! i32) and is scaled back once per output: `y = s_x s_o sum_k qx_k qw_ok + b_o`.

use candle_core::{Device, Result, Tensor};

use super::to_host;

/// A linear layer with int8 weights and dynamic int8 inputs.
pub struct Int8Linear {
    /// The weights, `[out, in]` row-major, as int8.
    q: Vec<i8>,
    /// Each output channel's scale.
    scales: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
}

/// Symmetric int8 values of `values` and their scale (`max |v| / 127`; 1 for an
/// all-zero row, whose values are all 0).
pub fn quantize_row(values: &[f32]) -> (Vec<i8>, f32) {
    let mut q = vec![0; values.len()];
    let scale = quantize_into(values, &mut q);
    (q, scale)
}

/// [`quantize_row`] into `q` (as long as `values`); returns the scale.
fn quantize_into(values: &[f32], q: &mut [i8]) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
    let inverse = 1.0 / scale;
    for (q, v) in q.iter_mut().zip(values) {
        *q = (v * inverse).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// The integer dot product of two int8 vectors, summed in i32 (in lanes of 16,
/// which the compiler turns into vector multiply-adds).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (chunks_a, chunks_b) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for k in 0..16 {
            lanes[k] += i32::from(x[k]) * i32::from(y[k]);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

impl Int8Linear {
    /// Quantizes `weight` (`[out, in]`) per output channel; the bias stays f32.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Int8Linear> {
        let (out, inp) = weight.dims2()?;
        let rows = to_host(weight)?.to_vec2::<f32>()?;
        let mut q = Vec::with_capacity(out * inp);
        let mut scales = Vec::with_capacity(out);
        for row in &rows {
            let (values, scale) = quantize_row(row);
            q.extend(values);
            scales.push(scale);
        }
        let bias = match bias {
            Some(it) => to_host(it)?.to_vec1::<f32>()?,
            None => vec![0.0; out],
        };
        Ok(Int8Linear { q, scales, bias, out, inp })
    }

    /// The weights as the int8 layer sees them, back in f32 (`[out, in]`).
    pub fn dequantized(&self) -> Result<Tensor> {
        let values: Vec<f32> = self
            .q
            .chunks(self.inp)
            .zip(&self.scales)
            .flat_map(|(row, s)| row.iter().map(move |q| f32::from(*q) * s))
            .collect();
        Tensor::from_vec(values, (self.out, self.inp), &Device::Cpu)
    }

    /// `xs` (`[n, in]`) through the layer, in integer products.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (n, inp) = xs.dims2()?;
        if inp != self.inp {
            candle_core::bail!("int8 layer takes {} inputs, got {inp}", self.inp);
        }
        let values = to_host(xs)?.flatten_all()?.to_vec1::<f32>()?;
        let mut ys = Vec::with_capacity(n * self.out);
        let mut qx = vec![0i8; inp];
        for row in values.chunks_exact(inp) {
            let sx = quantize_into(row, &mut qx);
            for ((qw, scale), bias) in self.q.chunks_exact(inp).zip(&self.scales).zip(&self.bias) {
                ys.push(dot_i8(&qx, qw) as f32 * sx * scale + bias);
            }
        }
        Tensor::from_vec(ys, (n, self.out), &Device::Cpu)
    }

    /// Stored numbers: the weights, a scale per channel and the bias.
    pub fn parameters(&self) -> usize {
        self.q.len() + self.scales.len() + self.bias.len()
    }

    /// Bytes: one per weight, four per scale and bias value.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * (self.scales.len() + self.bias.len())
    }

    /// The bound on |y - y_int8| for input row `x`: each product's error from the
    /// two roundings, `|x_k| s_o / 2 + |w_ok| s_x / 2 + s_x s_o / 4`, summed.
    pub fn error_bound(&self, weight: &[Vec<f32>], x: &[f32], o: usize) -> f32 {
        let (_, sx) = quantize_row(x);
        let so = self.scales[o];
        x.iter()
            .zip(&weight[o])
            .map(|(xk, wk)| xk.abs() * so / 2.0 + wk.abs() * sx / 2.0 + sx * so / 4.0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<Vec<f32>> {
        (0..rows).map(|_| (0..cols).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect()
    }

    fn tensor(rows: &[Vec<f32>]) -> Tensor {
        Tensor::new(rows.to_vec(), &Device::Cpu).unwrap()
    }

    #[test]
    fn each_weight_is_within_half_a_step_and_each_output_within_its_bound() {
        let mut rng = StdRng::seed_from_u64(4);
        let weight = random(&mut rng, 24, 64);
        let bias: Vec<f32> = (0..24).map(|i| i as f32 / 10.0).collect();
        let layer = Int8Linear::new(
            &tensor(&weight),
            Some(&Tensor::new(bias.clone(), &Device::Cpu).unwrap()),
        )
        .unwrap();
        let back = layer.dequantized().unwrap().to_vec2::<f32>().unwrap();
        for (o, (row, orig)) in back.iter().zip(&weight).enumerate() {
            for (b, w) in row.iter().zip(orig) {
                assert!((b - w).abs() <= layer.scales[o] / 2.0 + 1e-7, "row {o}: {b} vs {w}");
            }
        }
        let xs = random(&mut rng, 5, 64);
        let ys = layer.forward(&tensor(&xs)).unwrap().to_vec2::<f32>().unwrap();
        let mut largest_share = 0f32;
        for (x, y) in xs.iter().zip(&ys) {
            for o in 0..24 {
                let exact: f32 =
                    x.iter().zip(&weight[o]).map(|(a, b)| a * b).sum::<f32>() + bias[o];
                let bound = layer.error_bound(&weight, x, o);
                let err = (y[o] - exact).abs();
                assert!(err <= bound * 1.0001 + 1e-5, "output {o}: error {err} over bound {bound}");
                largest_share = largest_share.max(err / bound);
            }
        }
        // The products really are rounded (an f32 path would be exact).
        assert!(largest_share > 0.0);
        assert_eq!(layer.bytes(), 24 * 64 + 4 * 48);
    }
}
