/* Row kernels of the bf16 DiT on CPU (loaded by wan21_core/cpu_kernels.py). Rows are shared out over
 * the OpenMP threads of the process (torch's own pool, see the loader).
 *
 * wan21_softmax_bf16: in-place row softmax of a bf16 matrix, optionally with a per-column fp32 bias
 * on the logits: the softmax of the CPU attention's score blocks. Each row is read twice from bf16
 * (max; exponentials into an fp32 scratch row with their sum) and written once. The exponential is 2^t with t = (x - max)·log2(e) clamped to [-100, 0], split as
 * t = n + f (n = round(t), |f| <= 1/2): 2^f from the Cephes exp2f polynomial (relative error about
 * 1e-7, far below bf16's 2^-9 rounding) and 2^n through the exponent bits. Clamping at -100 keeps
 * every value normal (no slow denormals); such a term is below 2^-100 of the row's largest one.
 *
 * wan21_layer_norm_bf16: LayerNorm of fp32 rows (statistics in fp32, two passes over the row) with
 * an optional fp32 affine, written as bf16: the norm in front of each of the block's bf16 linears,
 * in one pass instead of torch's norm, modulation and conversion.
 *
 * wan21_rms_rope_bf16: the attention's query/key epilogue. A bf16 projection row (all heads) is
 * RMS-normalised over its full width in fp32, times the norm weight, optionally rotated by RoPE
 * (interleaved channel pairs times a complex64 unit rotation per token and pair), and written as
 * bf16 through output strides, so it lands straight in the head-major q/k buffer.
 */
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f) {           /* round to nearest even */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float exp2_nonpositive(float t) {           /* 2^t for t in [-100, 0] */
    int n = (int)(t - 0.5f);                              /* round(t): truncation of a negative */
    float f = t - (float)n;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;             /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static void softmax_row(uint16_t *row, const float *bias, long cols, float *e) {
    const float log2e = 1.4426950408889634f;
    for (long j = 0; j < cols; j++)
        e[j] = bf16_to_float(row[j]) + (bias ? bias[j] : 0.0f);
    float top = e[0];
    for (long j = 1; j < cols; j++)
        top = e[j] > top ? e[j] : top;
    float sum = 0.0f;
    for (long j = 0; j < cols; j++) {
        float t = (e[j] - top) * log2e;
        e[j] = exp2_nonpositive(t < -100.0f ? -100.0f : t);
        sum += e[j];
    }
    float inv = 1.0f / sum;
    for (long j = 0; j < cols; j++)
        row[j] = float_to_bf16(e[j] * inv);
}

/* x [rows, cols] bf16, contiguous; bias [cols] fp32 or NULL. Returns 0, or 1 (nothing written) when a
 * thread's fp32 scratch row cannot be allocated. */
int wan21_softmax_bf16(uint16_t *x, const float *bias, long rows, long cols, int threads) {
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        float *e = malloc((size_t)cols * sizeof *e);
        if (!e) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        if (!failed) {
            #pragma omp for schedule(static)
            for (long r = 0; r < rows; r++)
                softmax_row(x + r * cols, bias, cols, e);
        }
        free(e);
    }
    return failed;
}

/* x [rows, cols] fp32 and out [rows, cols] bf16, both contiguous; weight, bias [cols] fp32 or both NULL. */
void wan21_layer_norm_bf16(const float *x, long rows, long cols, const float *weight, const float *bias,
                           float eps, uint16_t *out, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        uint16_t *dst = out + r * cols;
        float sum = 0.0f;
        for (long j = 0; j < cols; j++)
            sum += row[j];
        float mean = sum / (float)cols;
        float squares = 0.0f;
        for (long j = 0; j < cols; j++)
            squares += (row[j] - mean) * (row[j] - mean);
        float rstd = 1.0f / sqrtf(squares / (float)cols + eps);
        if (weight)
            for (long j = 0; j < cols; j++)
                dst[j] = float_to_bf16((row[j] - mean) * rstd * weight[j] + bias[j]);
        else
            for (long j = 0; j < cols; j++)
                dst[j] = float_to_bf16((row[j] - mean) * rstd);
    }
}

/* y [rows, heads·head_dim] bf16 contiguous; weight [heads·head_dim] fp32; rot [rows, head_dim/2] complex64
 * (cos, sin pairs) or NULL; out element (r, h, c) at out[r·token_stride + h·head_stride + c]. */
void wan21_rms_rope_bf16(const uint16_t *y, long rows, long heads, long head_dim, const float *weight,
                         const float *rot, float eps, uint16_t *out, long token_stride, long head_stride,
                         int threads) {
    long width = heads * head_dim;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const uint16_t *src = y + r * width;
        float squares = 0.0f;
        for (long c = 0; c < width; c++)
            squares += bf16_to_float(src[c]) * bf16_to_float(src[c]);
        float factor = 1.0f / sqrtf(squares / (float)width + eps);
        for (long h = 0; h < heads; h++) {
            const uint16_t *in = src + h * head_dim;
            const float *w = weight + h * head_dim;
            uint16_t *dst = out + r * token_stride + h * head_stride;
            if (!rot) {
                for (long c = 0; c < head_dim; c++)
                    dst[c] = float_to_bf16(bf16_to_float(in[c]) * w[c] * factor);
                continue;
            }
            const float *turn = rot + r * head_dim;            /* head_dim/2 (cos, sin) pairs */
            for (long c = 0; c < head_dim; c += 2) {
                float a = bf16_to_float(in[c]) * w[c] * factor, b = bf16_to_float(in[c + 1]) * w[c + 1] * factor;
                float cs = turn[c], sn = turn[c + 1];
                dst[c] = float_to_bf16(a * cs - b * sn);
                dst[c + 1] = float_to_bf16(a * sn + b * cs);
            }
        }
    }
}
