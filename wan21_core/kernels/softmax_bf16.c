/* In-place row softmax of a bfloat16 matrix, optionally with a per-column fp32 bias on the logits:
 * the softmax of the CPU attention's score blocks (loaded by wan21_core/cpu_softmax.py).
 *
 * Each row is read twice from bf16 (max; exponentials into an fp32 scratch row with their sum) and
 * written once. The exponential is 2^t with t = (x - max)·log2(e) clamped to [-100, 0], split as
 * t = n + f (n = round(t), |f| <= 1/2): 2^f from the Cephes exp2f polynomial (relative error about
 * 1e-7, far below bf16's 2^-9 rounding) and 2^n through the exponent bits. Clamping at -100 keeps
 * every value normal (no slow denormals); such a term is below 2^-100 of the row's largest one.
 * The rows are shared out over the OpenMP threads of the process (torch's own pool, see the loader).
 */
#include <stdint.h>
#include <string.h>

#define MAX_COLS 16384

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

int wan21_softmax_max_cols(void) { return MAX_COLS; }

/* x [rows, cols] bf16, contiguous, cols <= MAX_COLS; bias [cols] fp32 or NULL. */
void wan21_softmax_bf16(uint16_t *x, const float *bias, long rows, long cols, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        float e[MAX_COLS];
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++)
            softmax_row(x + r * cols, bias, cols, e);
    }
}
