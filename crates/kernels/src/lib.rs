//! hpo-kernels: hpo's compute kernels, and every line of hpo's unsafe code.
//!
//! - [`fused`]: the training ops whose composite candle form dominated a step, as
//!   candle custom ops with their own backward passes (linear layers, convolutions
//!   with pooling and activation, causal attention, softmax cross-entropy,
//!   embeddings, normalizations, dropout, activations), each with a CPU form and,
//!   under the `cuda` feature, a CUDA form.
//! - [`gemm`]: the CPU matrix product the CPU forms call, a checked front to the
//!   `gemm` crate.
//! - [`adamw`]: AdamW's update over plain slices, and the scalars its CUDA kernel
//!   takes.
//! - `cuda` (`cuda` feature): the launches of the kernels in `cuda/fused.cu`, which
//!   the build script compiles to PTX with nvcc.
//! - [`gpu`]: GPU devices with a stream of their own, and the GPU memory in use.
//! - [`alloc`]: the allocator settings the binary makes at start-up.
//!
//! Every other crate of hpo forbids unsafe code. Here each `unsafe` block says
//! why it is sound in a `// SAFETY:` comment above it, and each public function
//! checks the preconditions its unsafe code relies on (lengths, shapes,
//! contiguity) and returns an error instead of reading out of bounds.
#![allow(unsafe_code)]

pub mod adamw;
pub mod alloc;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod fused;
pub mod gemm;
pub mod gpu;
mod window;
