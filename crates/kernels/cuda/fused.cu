// CUDA kernels of hpo-train's fused ops (src/model/fused/cuda.rs launches them;
// the CPU forms in src/model/fused.rs are their reference). Compiled to PTX by
// build.rs when the `cuda` feature is on. All data is contiguous f32 (token ids
// and targets u32).
//
// Row-wise kernels give each row one warp: blocks of 32 x ROWS_PER_BLOCK threads,
// row = blockIdx.x * blockDim.y + threadIdx.y. Reductions run in a fixed order,
// so results repeat bit for bit, except the embedding backward, which adds with
// atomics (as PyTorch's index_add_ does).

#include <stdint.h>

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ long long warp_row() {
    return (long long)blockIdx.x * blockDim.y + threadIdx.y;
}

// ---- softmax over the last dim of scale * x; causal: row r of each n x n matrix
// sees columns 0..=r % n, the rest get 0.

extern "C" __global__ void softmax_fwd(const float* x, float* y, long long rows, int n, float scale,
                                       int causal) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    int seen = causal ? (int)(row % n) + 1 : n;
    const float* xr = x + row * n;
    float* yr = y + row * n;
    float m = -INFINITY;
    for (int i = lane; i < seen; i += 32) m = fmaxf(m, xr[i]);
    m = warp_max(m) * scale;
    float s = 0.f;
    for (int i = lane; i < seen; i += 32) {
        float e = expf(xr[i] * scale - m);
        yr[i] = e;
        s += e;
    }
    float inverse = 1.f / warp_sum(s);
    for (int i = lane; i < n; i += 32) yr[i] = i < seen ? yr[i] * inverse : 0.f;
}

// ds = scale * y * (dy - sum(y * dy)), per row.
extern "C" __global__ void softmax_bwd(const float* y, const float* dy, float* ds, long long rows,
                                       int n, float scale) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    const float* yr = y + row * n;
    const float* dyr = dy + row * n;
    float dot = 0.f;
    for (int i = lane; i < n; i += 32) dot += yr[i] * dyr[i];
    dot = warp_sum(dot);
    float* dsr = ds + row * n;
    for (int i = lane; i < n; i += 32) dsr[i] = scale * yr[i] * (dyr[i] - dot);
}

// ---- layer normalization over rows of d: mean, then the biased variance from a
// second pass (as the CPU form).

__device__ __forceinline__ void row_moments(const float* xr, int d, float eps, int lane,
                                            float* mean, float* rstd) {
    float s = 0.f;
    for (int i = lane; i < d; i += 32) s += xr[i];
    float mu = warp_sum(s) / d;
    float q = 0.f;
    for (int i = lane; i < d; i += 32) {
        float c = xr[i] - mu;
        q += c * c;
    }
    *mean = mu;
    *rstd = 1.f / sqrtf(warp_sum(q) / d + eps);
}

extern "C" __global__ void layer_norm_fwd(const float* x, const float* gamma, const float* beta,
                                          float* y, long long rows, int d, float eps) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    const float* xr = x + row * d;
    float mean, rstd;
    row_moments(xr, d, eps, lane, &mean, &rstd);
    float* yr = y + row * d;
    for (int i = lane; i < d; i += 32) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
extern "C" __global__ void layer_norm_input_grad(const float* x, const float* gamma,
                                                 const float* dy, float* dx, long long rows, int d,
                                                 float eps) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    const float* xr = x + row * d;
    const float* dyr = dy + row * d;
    float mean, rstd;
    row_moments(xr, d, eps, lane, &mean, &rstd);
    float g_sum = 0.f, gx_sum = 0.f;
    for (int i = lane; i < d; i += 32) {
        float g = dyr[i] * gamma[i];
        g_sum += g;
        gx_sum += g * (xr[i] - mean) * rstd;
    }
    float g_mean = warp_sum(g_sum) / d, gx_mean = warp_sum(gx_sum) / d;
    float* dxr = dx + row * d;
    for (int i = lane; i < d; i += 32) {
        float xhat = (xr[i] - mean) * rstd;
        dxr[i] = rstd * (dyr[i] * gamma[i] - g_mean - xhat * gx_mean);
    }
}

// Each row's (mean, rstd), for the parameter gradient.
extern "C" __global__ void layer_norm_stats(const float* x, float* stats, long long rows, int d,
                                            float eps) {
    long long row = warp_row();
    if (row >= rows) return;
    float mean, rstd;
    row_moments(x + row * d, d, eps, threadIdx.x, &mean, &rstd);
    if (threadIdx.x == 0) {
        stats[2 * row] = mean;
        stats[2 * row + 1] = rstd;
    }
}

// Parameter gradients, stage 1: block (bx, chunk) sums columns bx*32.. over the
// rows of its chunk into partial[chunk] = [dgamma (d), dbeta (d)]. Blocks of 32 x 8.
extern "C" __global__ void layer_norm_param_partial(const float* x, const float* dy,
                                                    const float* stats, float* partial,
                                                    long long rows, int d, int chunk_rows) {
    __shared__ float sg[8][33], sb[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    long long start = (long long)blockIdx.y * chunk_rows;
    long long end = min(start + chunk_rows, rows);
    float g = 0.f, b = 0.f;
    if (col < d) {
        for (long long r = start + threadIdx.y; r < end; r += 8) {
            float v = dy[r * d + col];
            g += v * (x[r * d + col] - stats[2 * r]) * stats[2 * r + 1];
            b += v;
        }
    }
    sg[threadIdx.y][threadIdx.x] = g;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < d) {
        for (int k = 1; k < 8; k++) {
            g += sg[k][threadIdx.x];
            b += sb[k][threadIdx.x];
        }
        float* out = partial + (long long)blockIdx.y * 2 * d;
        out[col] = g;
        out[d + col] = b;
    }
}

// Stage 2: out[i] = sum over chunks of partial[chunk][i], i < 2d, in chunk order.
extern "C" __global__ void sum_chunks(const float* partial, float* out, int chunks, int width) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= width) return;
    float s = 0.f;
    for (int c = 0; c < chunks; c++) s += partial[(long long)c * width + i];
    out[i] = s;
}

// ---- softmax cross-entropy with label smoothing ls over rows of v logits:
// loss_r = (1 - ls) * (lse - x[t]) + ls * (lse - mean(x)). An out-of-range target
// gives NaN.

__device__ __forceinline__ float row_logsumexp(const float* xr, int v, int lane) {
    float m = -INFINITY;
    for (int i = lane; i < v; i += 32) m = fmaxf(m, xr[i]);
    m = warp_max(m);
    float s = 0.f;
    for (int i = lane; i < v; i += 32) s += expf(xr[i] - m);
    return m + logf(warp_sum(s));
}

extern "C" __global__ void cross_entropy_rows(const float* logits, const uint32_t* targets,
                                              float* losses, long long rows, int v,
                                              float smoothing) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    const float* xr = logits + row * v;
    float lse = row_logsumexp(xr, v, lane);
    float s = 0.f;
    for (int i = lane; i < v; i += 32) s += xr[i];
    float mean = warp_sum(s) / v;
    if (lane == 0) {
        uint32_t t = targets[row];
        losses[row] = t < (uint32_t)v
                          ? (1.f - smoothing) * (lse - xr[t]) + smoothing * (lse - mean)
                          : __int_as_float(0x7fc00000);
    }
}

// The mean of n values in one block of 1024 threads (fixed order).
extern "C" __global__ void mean_of(const float* values, float* out, long long n) {
    __shared__ float partial[32];
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += values[i];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        s = warp_sum(s);
        if (threadIdx.x == 0) out[0] = s / (float)n;
    }
}

// d loss / d logits for the mean loss with upstream gradient *grad:
// grad / rows * (softmax - ls / v - (1 - ls) * onehot(t)).
extern "C" __global__ void cross_entropy_grad(const float* logits, const uint32_t* targets,
                                              const float* grad, float* dlogits, long long rows,
                                              int v, float smoothing) {
    long long row = warp_row();
    if (row >= rows) return;
    int lane = threadIdx.x;
    const float* xr = logits + row * v;
    float lse = row_logsumexp(xr, v, lane);
    float g = grad[0] / (float)rows;
    uint32_t t = targets[row];
    float* dr = dlogits + row * v;
    for (int i = lane; i < v; i += 32) {
        float target = smoothing / v + (i == (int)t ? 1.f - smoothing : 0.f);
        dr[i] = g * (expf(xr[i] - lse) - target);
    }
}

// ---- embedding: out[r] = table[ids[r]]; backward scatters rows of dy into the
// table's gradient across the whole grid.

extern "C" __global__ void embedding_fwd(const float* table, const uint32_t* ids, float* out,
                                         long long n, int d, int vocab) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; i < n * d; i += stride) {
        uint32_t id = ids[i / d];
        out[i] = id < (uint32_t)vocab ? table[(long long)id * d + i % d] : __int_as_float(0x7fc00000);
    }
}

extern "C" __global__ void embedding_bwd(const uint32_t* ids, const float* dy, float* dtable,
                                         long long n, int d, int vocab) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; i < n * d; i += stride) {
        uint32_t id = ids[i / d];
        if (id < (uint32_t)vocab) atomicAdd(dtable + (long long)id * d + i % d, dy[i]);
    }
}

// ---- 2x2 max pooling with stride 2 over planes of h x w (odd edges dropped);
// the gradient goes to the first maximum of each window, in row-major order.

__device__ __forceinline__ int window_argmax(const float* plane, int w, int oy, int ox) {
    int at = 2 * oy * w + 2 * ox;
    float a = plane[at], b = plane[at + 1], c = plane[at + w], e = plane[at + w + 1];
    float upper = b > a ? b : a;
    int upper_at = b > a ? at + 1 : at;
    float lower = e > c ? e : c;
    int lower_at = e > c ? at + w + 1 : at + w;
    return lower > upper ? lower_at : upper_at;
}

extern "C" __global__ void max_pool_fwd(const float* x, float* y, long long planes, int h, int w) {
    int oh = h / 2, ow = w / 2;
    long long total = planes * oh * ow;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long p = i / (oh * ow);
        int o = (int)(i % (oh * ow));
        const float* plane = x + p * h * w;
        y[i] = plane[window_argmax(plane, w, o / ow, o % ow)];
    }
}

// dx must be zeroed (windows do not overlap, so each element is written once).
extern "C" __global__ void max_pool_bwd(const float* x, const float* dy, float* dx,
                                        long long planes, int h, int w) {
    int oh = h / 2, ow = w / 2;
    long long total = planes * oh * ow;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long p = i / (oh * ow);
        int o = (int)(i % (oh * ow));
        dx[p * h * w + window_argmax(x + p * h * w, w, o / ow, o % ow)] = dy[i];
    }
}

// ---- AdamW over up to ADAMW_TENSORS parameter tensors in one launch: blockIdx.y
// picks the tensor, the x dimension strides over its elements. Candle's update:
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p = p * decay - lr * (m * scale_m) / (sqrt(v * scale_v) + eps).

#define ADAMW_TENSORS 16

struct AdamWTensors {
    float* param[ADAMW_TENSORS];
    const float* grad[ADAMW_TENSORS];
    float* m[ADAMW_TENSORS];
    float* v[ADAMW_TENSORS];
    unsigned long long len[ADAMW_TENSORS];
};

struct AdamWScalars {
    float beta1, beta2, lr, eps, decay, scale_m, scale_v;
};

extern "C" __global__ void adamw_step(AdamWTensors t, AdamWScalars s) {
    int k = blockIdx.y;
    float* p = t.param[k];
    const float* g = t.grad[k];
    float* m = t.m[k];
    float* v = t.v[k];
    unsigned long long n = t.len[k];
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = m[i] * s.beta1 + gi * (1.f - s.beta1);
        float vi = v[i] * s.beta2 + gi * gi * (1.f - s.beta2);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * s.decay - (mi * s.scale_m) / (sqrtf(vi * s.scale_v) + s.eps) * s.lr;
    }
}

// ---- dropout: y = x * scale, or 0 where the mask of `seed` drops element i (the
// top 24 bits of a SplitMix64 hash of seed ^ i below `threshold`, as
// layers::is_dropped). The backward pass applies the same mask to the gradient.

__device__ __forceinline__ bool is_dropped(uint64_t seed, uint64_t index, uint64_t threshold) {
    uint64_t z = (seed ^ index) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return ((z ^ (z >> 31)) >> 40) < threshold;
}

extern "C" __global__ void dropout(const float* x, float* y, long long n, uint64_t seed,
                                   uint64_t threshold, float scale) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = is_dropped(seed, (uint64_t)i, threshold) ? 0.f : x[i] * scale;
}

// ---- image augmentation: image i of x ([n images, channels, size, size]) moved by
// row i of `moves` (dx, dy, flip): mirrored left-right when flip, then shifted by
// (dx, dy), zeros where nothing moved in (augment.rs, Move::apply_plane).

extern "C" __global__ void move_images(const float* x, const long long* moves, float* y,
                                       long long n, int channels, int size) {
    long long plane = (long long)size * size;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long at = i % plane, image = i / (plane * channels);
        long long row = at / size, col = at % size;
        const long long* m = moves + 3 * image;
        long long sx = (m[2] ? size - 1 - col : col) - m[0];
        long long sy = row - m[1];
        bool inside = sx >= 0 && sx < size && sy >= 0 && sy < size;
        y[i] = inside ? x[i - at + sy * size + sx] : 0.f;
    }
}

// ---- GELU (exact, erf form) and ReLU, with their backward: dx = dy * f'(x).

extern "C" __global__ void gelu_fwd(const float* x, float* y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = 0.5f * x[i] * (1.f + erff(x[i] * 0.70710678118654752f));
}

extern "C" __global__ void gelu_bwd(const float* x, const float* dy, float* dx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float v = x[i];
        float df = 0.5f * (1.f + erff(v * 0.70710678118654752f)) +
                   v * 0.39894228040143268f * expf(-0.5f * v * v);
        dx[i] = dy[i] * df;
    }
}

extern "C" __global__ void relu_fwd(const float* x, float* y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = fmaxf(x[i], 0.f);
}

extern "C" __global__ void relu_bwd(const float* x, const float* dy, float* dx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dx[i] = x[i] > 0.f ? dy[i] : 0.f;
}

// ---- bias over the trailing dims: y[i] = x[i] + bias[i % m]; its backward sums
// the gradient's rows of m (two stages, as the layer norm's parameter gradient).

extern "C" __global__ void add_trailing(const float* x, const float* bias, float* y, long long n,
                                        int m) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] + bias[i % m];
}

// Block (bx, chunk) sums columns bx*32.. over the rows of its chunk into
// partial[chunk] (m values). Blocks of 32 x 8.
extern "C" __global__ void column_sum_partial(const float* x, float* partial, long long rows,
                                              int m, int chunk_rows) {
    __shared__ float s[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    long long start = (long long)blockIdx.y * chunk_rows;
    long long end = min(start + chunk_rows, rows);
    float acc = 0.f;
    if (col < m)
        for (long long r = start + threadIdx.y; r < end; r += 8) acc += x[r * m + col];
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < m) {
        for (int k = 1; k < 8; k++) acc += s[k][threadIdx.x];
        partial[(long long)blockIdx.y * m + col] = acc;
    }
}

// ---- a convolution's columns (im2col) over a channel-first batch x [c, b, h, w],
// stride 1, zero padding p, k x k kernel: cols[(ci k + dy) k + dx][(bi oh + oy) ow + ox]
// = x[ci][bi][oy + dy - p][ox + dx - p], 0 outside. The backward (col2im) gathers,
// for each input element, the columns that read it, in a fixed order.

extern "C" __global__ void im2col(const float* x, float* cols, int c, int b, int h, int w, int k,
                                  int p) {
    int oh = h + 2 * p - k + 1, ow = w + 2 * p - k + 1;
    long long row_len = (long long)b * oh * ow;
    long long total = (long long)c * k * k * row_len;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long r = i / row_len, col = i % row_len;
        int ci = (int)(r / (k * k)), dy = (int)(r / k % k), dx = (int)(r % k);
        int bi = (int)(col / (oh * ow)), rem = (int)(col % (oh * ow));
        int y = rem / ow + dy - p, xx = rem % ow + dx - p;
        cols[i] = (y >= 0 && y < h && xx >= 0 && xx < w)
                      ? x[(((long long)ci * b + bi) * h + y) * w + xx]
                      : 0.f;
    }
}

extern "C" __global__ void col2im(const float* cols, float* dx, int c, int b, int h, int w, int k,
                                  int p) {
    int oh = h + 2 * p - k + 1, ow = w + 2 * p - k + 1;
    long long row_len = (long long)b * oh * ow;
    long long total = (long long)c * b * h * w;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int xx = (int)(i % w), y = (int)(i / w % h), bi = (int)(i / ((long long)w * h) % b);
        int ci = (int)(i / ((long long)w * h * b));
        float sum = 0.f;
        for (int dy = 0; dy < k; dy++) {
            int oy = y - dy + p;
            if (oy < 0 || oy >= oh) continue;
            for (int dxk = 0; dxk < k; dxk++) {
                int ox = xx - dxk + p;
                if (ox < 0 || ox >= ow) continue;
                sum += cols[((long long)(ci * k + dy) * k + dxk) * row_len +
                            ((long long)bi * oh + oy) * ow + ox];
            }
        }
        dx[i] = sum;
    }
}

// y[i] = x[i] + bias[i / row_len]: a per-channel bias on [channels, positions].
extern "C" __global__ void add_per_row(const float* x, const float* bias, float* y, long long n,
                                       long long row_len) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] + bias[i / row_len];
}

// ---- batch normalization of a channel-first x: c rows of n values each (row =
// channel). stats rows are (mean, biased variance); affine rows (gamma, beta).

// The sum of v over a block of BN_THREADS threads, in a fixed order; every thread
// gets it.
#define BN_THREADS 256
__device__ __forceinline__ float block_sum(float v, float* shared) {
    v = warp_sum(v);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < BN_THREADS / 32; w++) total += shared[w];
    return total;
}

// One block per channel: its mean and biased variance (two passes).
extern "C" __global__ void bn_stats(const float* x, float* stats, long long n) {
    __shared__ float shared[BN_THREADS / 32];
    const float* row = x + blockIdx.x * n;
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += BN_THREADS) s += row[i];
    float mean = block_sum(s, shared) / (float)n;
    float q = 0.f;
    for (long long i = threadIdx.x; i < n; i += BN_THREADS) {
        float d = row[i] - mean;
        q += d * d;
    }
    float var = block_sum(q, shared) / (float)n;
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = mean;
        stats[2 * blockIdx.x + 1] = var;
    }
}

// y = (x - mean) * rsqrt(var + eps) * gamma + beta, over all c * n elements.
extern "C" __global__ void bn_apply(const float* x, const float* stats, const float* affine,
                                    float* y, long long total, long long n, float eps) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long c = i / n;
        float rstd = rsqrtf(stats[2 * c + 1] + eps);
        y[i] = (x[i] - stats[2 * c]) * rstd * affine[2 * c] + affine[2 * c + 1];
    }
}

// One block per channel: (sum of dy * x̂, sum of dy), the scale's and shift's
// gradients.
extern "C" __global__ void bn_sums(const float* x, const float* dy, const float* stats,
                                   float* sums, long long n, float eps) {
    __shared__ float shared[BN_THREADS / 32];
    long long off = blockIdx.x * n;
    float mean = stats[2 * blockIdx.x], rstd = rsqrtf(stats[2 * blockIdx.x + 1] + eps);
    float g = 0.f, b = 0.f;
    for (long long i = threadIdx.x; i < n; i += BN_THREADS) {
        float d = dy[off + i];
        g += d * (x[off + i] - mean) * rstd;
        b += d;
    }
    float dgamma = block_sum(g, shared);
    float dbeta = block_sum(b, shared);
    if (threadIdx.x == 0) {
        sums[2 * blockIdx.x] = dgamma;
        sums[2 * blockIdx.x + 1] = dbeta;
    }
}

// The input gradient; coef rows are (mean, var, gamma, beta, sum dy x̂, sum dy).
// train: the statistics are the batch's own, dx = gamma rstd / n (n dy - sum dy -
// x̂ sum dy x̂); else they are constants, dx = gamma rstd dy.
extern "C" __global__ void bn_input_grad(const float* x, const float* dy, const float* coef,
                                         float* dx, long long total, long long n, float eps,
                                         int train) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const float* k = coef + 6 * (i / n);
        float rstd = rsqrtf(k[1] + eps);
        if (train) {
            float xhat = (x[i] - k[0]) * rstd;
            dx[i] = k[2] * rstd / (float)n * ((float)n * dy[i] - k[5] - xhat * k[4]);
        } else {
            dx[i] = k[2] * rstd * dy[i];
        }
    }
}
