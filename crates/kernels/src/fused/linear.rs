//! A linear layer, `y = x W^T + b` over the last dim of `x`, as one op.
//!
//! Composed from candle ops it is a reshape, a transpose, a matmul, another
//! reshape and a bias add: five nodes, each of which candle's backward pass gives a
//! zero-filled gradient buffer and an extra add. As one op it is one node whose
//! forward writes the bias and accumulates the product into the same buffer, and
//! whose backward is two products and a column sum, each straight into its result.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{Precision, SumRows, add_trailing, data, matmul_in};
use crate::gemm::{MatMut, MatRef, Threads, matmul};

/// The forward op; the bias, if any, is the third input.
struct Linear;

/// `x W^T (+ b)` for `x` `[.., in]` and `W` `[out, in]`; returns the data and shape.
fn forward(
    x: &[f32],
    x_shape: &Shape,
    weight: &[f32],
    weight_shape: &Shape,
    bias: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let (out, fan_in) = weight_shape.dims2()?;
    if x_shape.dims().last() != Some(&fan_in) || bias.is_some_and(|b| b.len() != out) {
        candle_core::bail!("linear: input {x_shape:?}, weight {weight_shape:?}, bias of {out}");
    }
    let rows = x.len() / fan_in.max(1);
    let mut y = match bias {
        Some(bias) => bias.repeat(rows),
        None => vec![0f32; rows * out],
    };
    let x = MatRef::row_major(x, rows, fan_in);
    let w_t = MatRef::row_major(weight, out, fan_in).t();
    matmul(MatMut::row_major(&mut y, rows, out), x, w_t, bias.is_some(), Threads::All);
    let mut dims = x_shape.dims().to_vec();
    *dims.last_mut().expect("checked above") = out;
    Ok((CpuStorage::F32(y), Shape::from(dims)))
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(data(s1, l1)?, l1.shape(), data(s2, l2)?, l2.shape(), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(x, weight, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let bias = data(s3, l3)?;
        forward(data(s1, l1)?, l1.shape(), data(s2, l2)?, l2.shape(), Some(bias))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        backward(x, weight, Some(bias), grad)
    }
}

/// Gradients of x (unless x is data, which needs none), W and b.
fn backward(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let grad = grad.contiguous()?;
    let dx = if x.track_op() { Some(grad.apply_op2_no_bwd(weight, &InputGrad)?) } else { None };
    let dw = grad.apply_op2_no_bwd(x, &WeightGrad)?;
    let db = match bias {
        Some(bias) => Some(grad.apply_op1_no_bwd(&SumRows { n: bias.elem_count() })?),
        None => None,
    };
    Ok((dx, Some(dw), db))
}

/// (dy `[.., out]`, W `[out, in]`) -> dx = dy W, `[.., in]`.
struct InputGrad;

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dy, weight) = (data(s1, l1)?, data(s2, l2)?);
        let (out, fan_in) = l2.shape().dims2()?;
        let rows = dy.len() / out.max(1);
        let mut dx = vec![0f32; rows * fan_in];
        let (dy, weight) =
            (MatRef::row_major(dy, rows, out), MatRef::row_major(weight, out, fan_in));
        matmul(MatMut::row_major(&mut dx, rows, fan_in), dy, weight, false, Threads::All);
        let mut dims = l1.shape().dims().to_vec();
        *dims.last_mut().expect("rank >= 1") = fan_in;
        Ok((CpuStorage::F32(dx), Shape::from(dims)))
    }
}

/// (dy `[.., out]`, x `[.., in]`) -> dW = dy^T x, `[out, in]`.
struct WeightGrad;

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dy, x) = (data(s1, l1)?, data(s2, l2)?);
        let out = *l1.shape().dims().last().expect("rank >= 1");
        let fan_in = *l2.shape().dims().last().expect("rank >= 1");
        let rows = dy.len() / out.max(1);
        let mut dw = vec![0f32; out * fan_in];
        let (dy, x) = (MatRef::row_major(dy, rows, out), MatRef::row_major(x, rows, fan_in));
        matmul(MatMut::row_major(&mut dw, out, fan_in), dy.t(), x, false, Threads::All);
        Ok((CpuStorage::F32(dw), Shape::from((out, fan_in))))
    }
}

/// `x W^T + b` over the last dim of `x` (`[.., in]`), `W` `[out, in]`, `b` `[out]`,
/// the product in `precision`.
pub fn linear(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    precision: Precision,
) -> Result<Tensor> {
    if xs.device().is_cpu() && precision.is_f32() {
        let (xs, weight) = (xs.contiguous()?, weight.contiguous()?);
        return match bias {
            Some(bias) => xs.apply_op3(&weight, &bias.contiguous()?, Linear),
            None => xs.apply_op2(&weight, Linear),
        };
    }
    linear_composite(xs, weight, bias, precision)
}

/// [`linear`] from candle ops.
pub(super) fn linear_composite(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    precision: Precision,
) -> Result<Tensor> {
    // Batched inputs ([b, t, in]) multiply as one [b * t, in] matrix.
    let ys = match xs.dims() {
        [b, t, _] => {
            matmul_in(&xs.reshape((b * t, ()))?, &weight.t()?, precision)?.reshape((*b, *t, ()))?
        }
        _ => matmul_in(xs, &weight.t()?, precision)?,
    };
    match bias {
        Some(bias) => add_trailing(&ys, bias),
        None => Ok(ys),
    }
}
