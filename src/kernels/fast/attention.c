/* Fast causal self-attention (multi-head and grouped-query) without the T x T matrix: tiled
 * online softmax forward that saves only the log-sum-exp per row, and a backward that
 * recomputes the probabilities. With document masking a row block skips the keys before its
 * first row's document start. */
/* Work is split over (batch, head) pairs; each pair owns its rows of out and dqkv, so no two
 * threads ever write the same float. sgemm runs single-threaded inside the OpenMP loop.
 * Memory: saved = B*NH*T floats (the log-sum-exp); backward scratch = 2 * ATT_RB * T floats
 * per thread; the forward uses fixed-size tiles on the thread's stack. */
#include "kernels/fast/fast.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

/* query rows per block: row block [r0, r1) only meets keys [0, r1) */
#define ATT_RB 64
/* keys per tile in the forward's online softmax (the stack tile is ATT_RB x ATT_KB floats) */
#define ATT_KB 256

/* threads the backward runs on; its scratch holds one slot per thread */
static int att_slots(int B, int NH) {
    int nt = omp_get_max_threads(), pairs = B * NH;
    return pairs < nt ? (pairs > 0 ? pairs : 1) : nt;
}

size_t lmf_fast_attention_saved_floats(int B, int T, int NH) {
    return (size_t)B * NH * T;
}

size_t lmf_fast_attention_scratch_floats(int B, int T, int NH, int C) {
    (void)C;
    return (size_t)att_slots(B, NH) * 2 * ATT_RB * (size_t)T;
}

/* max of row[0..n), n >= 1 */
static float row_max(const float *row, int n) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(row + i));
    float mx = lmf_hmax256(mx8);
    for (; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    return mx;
}

/* row[lo..n) <- e^(row - sub), row[0..lo) and row[n..len) <- 0; returns the sum of
 * row[lo..n) */
static float row_exp(float *row, int lo, int n, int len, float sub) {
    __m256 m8 = _mm256_set1_ps(sub), s8 = _mm256_setzero_ps();
    int i = 0;
    for (; i < lo && i < len; i++) row[i] = 0.0f;
    for (; i + 8 <= n; i += 8) {
        __m256 e = lmf_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + i), m8));
        _mm256_storeu_ps(row + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float s = lmf_hsum256(s8);
    for (; i < n; i++) {
        row[i] = expf(row[i] - sub);
        s += row[i];
    }
    for (i = n < lo ? lo : n; i < len; i++) row[i] = 0.0f;
    return s;
}

static void row_scale(float *row, int n, float a) {
    __m256 a8 = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), a8));
    for (; i < n; i++) row[i] *= a;
}

/* first key row t may attend to (ds: the row's doc_start[T], or NULL) */
static int first_key(const int *ds, int t) { return ds ? ds[t] : 0; }

/* One head of the forward: o (row stride os) and lse[T] from q, k, v (row strides qs, ks, vs).
 * lse[t] = log sum_u e^(s_tu) with s = q.k / sqrt(hs) over first_key(ds, t) <= u <= t. Per row
 * block the keys from the block's first document start come in tiles of ATT_KB: S = scale Q
 * K^T by sgemm, a running max m and sum l per row, O rescaled by e^(m_old - m_new) when the max
 * grows, O += P V by sgemm; at the end O /= l. */
static void head_forward(float *o, int os, float *lse, const float *q, int qs, const float *k,
                         int ks, const float *v, int vs, const int *ds, int T, int hs,
                         float scale) {
    float S[ATT_RB * ATT_KB], mrow[ATT_RB], lrow[ATT_RB];
    for (int r0 = 0; r0 < T; r0 += ATT_RB) {
        int r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, rb = r1 - r0;
        int k0 = first_key(ds, r0); /* no row of the block attends before it */
        for (int i = 0; i < rb; i++) {
            mrow[i] = -INFINITY;
            lrow[i] = 0.0f;
            float *orow = o + (size_t)(r0 + i) * os;
            for (int j = 0; j < hs; j++) orow[j] = 0.0f;
        }
        for (int c0 = k0; c0 < r1; c0 += ATT_KB) {
            int c1 = c0 + ATT_KB < r1 ? c0 + ATT_KB : r1, kb = c1 - c0;
            /* S[0:rb, 0:kb] = scale * Q[r0:r1] K[c0:c1]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, kb, hs, scale,
                        q + (size_t)r0 * qs, qs, k + (size_t)c0 * ks, ks, 0.0f, S, ATT_KB);
            for (int i = 0; i < rb; i++) {
                /* valid keys of this row in the tile: [lo, n) */
                int t = r0 + i, n = t + 1 - c0, lo = first_key(ds, t) - c0;
                if (n > kb) n = kb;
                if (lo < 0) lo = 0;
                float *srow = S + (size_t)i * ATT_KB;
                if (n <= lo) { /* the whole tile is in this row's future or another document */
                    row_exp(srow, 0, 0, kb, 0.0f);
                    continue;
                }
                float mx = row_max(srow + lo, n - lo), mnew = mx > mrow[i] ? mx : mrow[i];
                if (mnew > mrow[i] && lrow[i] > 0.0f) {
                    float a = expf(mrow[i] - mnew);
                    lrow[i] *= a;
                    row_scale(o + (size_t)t * os, hs, a);
                }
                mrow[i] = mnew;
                lrow[i] += row_exp(srow, lo, n, kb, mnew);
            }
            /* O[r0:r1] += P V[c0:c1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rb, hs, kb, 1.0f, S, ATT_KB,
                        v + (size_t)c0 * vs, vs, 1.0f, o + (size_t)r0 * os, os);
        }
        for (int i = 0; i < rb; i++) {
            row_scale(o + (size_t)(r0 + i) * os, hs, 1.0f / lrow[i]);
            lse[r0 + i] = mrow[i] + logf(lrow[i]);
        }
    }
}

/* out[B,T,C]; saved[B,NH,T], the log-sum-exp of each row (head_forward per (batch, head)) */
void lmf_fast_attention_forward(float *out, float *saved, const float *qkv, const int *doc_start,
                                int B, int T, int C, int NH) {
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    lmf_fast_blas_single();
#pragma omp parallel
    {
    LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
        head_forward(out + (size_t)b * T * C + (size_t)h * hs, C, saved + (size_t)bh * T, q, C3,
                     q + C, C3, q + 2 * C, C3, doc_start ? doc_start + (size_t)b * T : NULL, T,
                     hs, scale);
    }
    LMF_BUSY_END();
    }
}

/* Grouped heads: the same per-head forward with q, k, v in their own arrays. */
void lmf_fast_gqa_attention_forward(float *out, float *saved, const float *q, const float *k,
                                    const float *v, const int *doc_start, int B, int T, int NH,
                                    int NKV, int hs) {
    const int qs = NH * hs, ks = NKV * hs, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hs);
    lmf_fast_blas_single();
#pragma omp parallel
    {
    LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t kv = (size_t)b * T * ks + (size_t)(h / group) * hs;
        head_forward(out + (size_t)b * T * qs + (size_t)h * hs, qs, saved + (size_t)bh * T,
                     q + (size_t)b * T * qs + (size_t)h * hs, qs, k + kv, ks, v + kv, ks,
                     doc_start ? doc_start + (size_t)b * T : NULL, T, hs, scale);
    }
    LMF_BUSY_END();
    }
}

/* P[t,u] = e^(s_tu - lse_t) for u in [lo, n); dS[t,u] = scale P (dP - sum_w P dP) there;
 * both 0 elsewhere in [0, len). ds holds dP on entry. */
static void dsoftmax_row(float *ds, const float *p, int lo, int n, int len, float scale) {
    __m256 d8 = _mm256_setzero_ps();
    int i;
    for (i = 0; i < lo; i++) ds[i] = 0.0f;
    for (; i + 8 <= n; i += 8) d8 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(ds + i), d8);
    float dot = lmf_hsum256(d8);
    for (; i < n; i++) dot += p[i] * ds[i];
    __m256 dot8 = _mm256_set1_ps(dot), sc8 = _mm256_set1_ps(scale);
    for (i = lo; i + 8 <= n; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(p + i), _mm256_sub_ps(_mm256_loadu_ps(ds + i), dot8));
        _mm256_storeu_ps(ds + i, _mm256_mul_ps(t, sc8));
    }
    for (; i < n; i++) ds[i] = p[i] * (ds[i] - dot) * scale;
    for (i = n; i < len; i++) ds[i] = 0.0f;
}

/* One head of the backward, given dout (row stride ds), q, k, v, lse and the row's document
 * starts dst (or NULL): per row block [r0, r1), over the keys [k0, r1) from the block's first
 * document start: P = e^(scale Q K[k0:r1]^T - lse) recomputed, dP = dO V^T, dS as above, then
 * dQ[r0:r1] = dS K (beta 0: these rows get nothing else), dK[k0:r1] += dS^T Q,
 * dV[k0:r1] += P^T dO. With zero_kv, rows [r0, r1) of dK and dV are zeroed first (no earlier
 * block reaches them), so they are written; without, the head adds to what an earlier head of
 * its group wrote. P and S: ATT_RB * T floats each. */
static void head_backward(float *dq, int dqs, float *dk, float *dv, int dkvs, int zero_kv,
                          float *P, float *S, const float *d, int ds, const float *q, int qs,
                          const float *k, int ks, const float *v, int vs, const float *lse,
                          const int *dst, int T, int hs, float scale) {
    for (int r0 = 0; r0 < T; r0 += ATT_RB) {
        int r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, rb = r1 - r0;
        int k0 = first_key(dst, r0), w = r1 - k0; /* keys [k0, r1), w of them */
        const float *kk = k + (size_t)k0 * ks, *vv = v + (size_t)k0 * vs;
        /* P[0:rb, 0:w] = softmax rows, recomputed from scores and lse */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, w, hs, scale,
                    q + (size_t)r0 * qs, qs, kk, ks, 0.0f, P, w);
        for (int i = 0; i < rb; i++)
            row_exp(P + (size_t)i * w, first_key(dst, r0 + i) - k0, r0 + i + 1 - k0, w,
                    lse[r0 + i]);
        /* dP[0:rb, 0:w] = dO[r0:r1] V[k0:r1]^T, then dS in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, w, hs, 1.0f,
                    d + (size_t)r0 * ds, ds, vv, vs, 0.0f, S, w);
        for (int i = 0; i < rb; i++)
            dsoftmax_row(S + (size_t)i * w, P + (size_t)i * w, first_key(dst, r0 + i) - k0,
                         r0 + i + 1 - k0, w, scale);
        /* dQ[r0:r1] = dS K[k0:r1]; dK[k0:r1] += dS^T Q[r0:r1]; dV[k0:r1] += P^T dO[r0:r1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rb, hs, w, 1.0f, S, w, kk, ks,
                    0.0f, dq + (size_t)r0 * dqs, dqs);
        if (zero_kv)
            for (int i = r0; i < r1; i++) {
                memset(dk + (size_t)i * dkvs, 0, (size_t)hs * sizeof(float));
                memset(dv + (size_t)i * dkvs, 0, (size_t)hs * sizeof(float));
            }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w, hs, rb, 1.0f, S, w,
                    q + (size_t)r0 * qs, qs, 1.0f, dk + (size_t)k0 * dkvs, dkvs);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w, hs, rb, 1.0f, P, w,
                    d + (size_t)r0 * ds, ds, 1.0f, dv + (size_t)k0 * dkvs, dkvs);
    }
}

/* dqkv[B,T,3C] = gradient (written) from dout[B,T,C], qkv and saved (the forward's
 * log-sum-exp), head_backward per (batch, head): no zeroing pass over dqkv before the kernel.
 * P and dS live in the thread's scratch slot. */
void lmf_fast_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *saved, const int *doc_start, int B, int T, int C,
                                 int NH) {
    const int hs = C / NH, C3 = 3 * C, slots = att_slots(B, NH);
    const float scale = 1.0f / sqrtf((float)hs);
    const size_t slot = 2 * (size_t)ATT_RB * T;
    lmf_fast_blas_single();
#pragma omp parallel num_threads(slots)
    {
        LMF_BUSY_BEGIN();
        float *P = scratch + (size_t)omp_get_thread_num() * slot, *S = P + (size_t)ATT_RB * T;
#pragma omp for schedule(static) nowait
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            size_t base = (size_t)b * T * C3 + (size_t)h * hs;
            const float *q = qkv + base;
            float *dq = dqkv + base;
            head_backward(dq, C3, dq + C, dq + 2 * C, C3, 1, P, S,
                          dout + (size_t)b * T * C + (size_t)h * hs, C, q, C3, q + C, C3, q + 2 * C,
                          C3, saved + (size_t)bh * T, doc_start ? doc_start + (size_t)b * T : NULL,
                          T, hs, scale);
        }
        LMF_BUSY_END();
    }
}

size_t lmf_fast_gqa_attention_scratch_floats(int B, int T, int NH, int NKV) {
    (void)NH;
    return (size_t)att_slots(B, NKV) * 2 * ATT_RB * (size_t)T;
}

/* Grouped heads: work is split over (batch, key/value head) pairs, each running the heads of
 * its group in order, so a key/value head's gradient is written by one thread: the group's
 * first head writes it, the others add. */
void lmf_fast_gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                                     const float *dout, const float *q, const float *k,
                                     const float *v, const float *saved, const int *doc_start,
                                     int B, int T, int NH, int NKV, int hs) {
    const int qs = NH * hs, ks = NKV * hs, group = NH / NKV, slots = att_slots(B, NKV);
    const float scale = 1.0f / sqrtf((float)hs);
    const size_t slot = 2 * (size_t)ATT_RB * T;
    lmf_fast_blas_single();
#pragma omp parallel num_threads(slots)
    {
        LMF_BUSY_BEGIN();
        float *P = scratch + (size_t)omp_get_thread_num() * slot, *S = P + (size_t)ATT_RB * T;
#pragma omp for schedule(static) nowait
        for (int bg = 0; bg < B * NKV; bg++) {
            int b = bg / NKV, g = bg % NKV;
            size_t kv = (size_t)b * T * ks + (size_t)g * hs;
            for (int j = 0; j < group; j++) {
                int h = g * group + j;
                size_t qo = (size_t)b * T * qs + (size_t)h * hs;
                head_backward(dq + qo, qs, dk + kv, dv + kv, ks, j == 0, P, S, dout + qo, qs,
                              q + qo, qs, k + kv, ks, v + kv, ks, saved + ((size_t)b * NH + h) * T,
                              doc_start ? doc_start + (size_t)b * T : NULL, T, hs, scale);
            }
        }
        LMF_BUSY_END();
    }
}

size_t lmf_fast_attention_kv_scratch_floats(int T) {
    return (size_t)omp_get_max_threads() * (size_t)T;
}

/* x . y over n floats */
static float dot(const float *x, const float *y, int n) {
    __m256 s8 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) s8 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s8);
    float s = lmf_hsum256(s8);
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* y += a x over n floats */
static void axpy(float *y, float a, const float *x, int n) {
    __m256 a8 = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a8, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* Per (new position, query head): scores against every cached key up to the position,
 * softmax, weighted sum of the values. q rows of qs floats, out rows of os, cache rows of ks;
 * query head h reads cache head h / group. Work is split over the pairs; each thread keeps its
 * scores in its own slot of T = past + n floats. */
static void kv_forward(float *out, size_t os, float *scratch, const float *q, size_t qs,
                       const float *kc, const float *vc, size_t ks, int past, int n, int NH,
                       int group, int hs) {
    const int T = past + n;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        float *s = scratch + (size_t)omp_get_thread_num() * (size_t)T;
#pragma omp for schedule(static) nowait
        for (int ih = 0; ih < n * NH; ih++) {
            int i = ih / NH, h = ih % NH, t = past + i;
            size_t kvh = (size_t)(h / group) * hs;
            const float *qh = q + (size_t)i * qs + (size_t)h * hs;
            for (int u = 0; u <= t; u++) s[u] = scale * dot(qh, kc + (size_t)u * ks + kvh, hs);
            float sum = row_exp(s, 0, t + 1, t + 1, row_max(s, t + 1));
            float *o = out + (size_t)i * os + (size_t)h * hs;
            memset(o, 0, (size_t)hs * sizeof(float));
            for (int u = 0; u <= t; u++) axpy(o, s[u], vc + (size_t)u * ks + kvh, hs);
            row_scale(o, hs, 1.0f / sum);
        }
        LMF_BUSY_END();
    }
}

void lmf_fast_attention_kv_forward(float *out, float *scratch, const float *q, size_t q_stride,
                                   const float *kc, const float *vc, int past, int n, int C,
                                   int NH) {
    kv_forward(out, (size_t)C, scratch, q, q_stride, kc, vc, (size_t)C, past, n, NH, 1, C / NH);
}

/* Grouped heads against the cache: query head h reads key/value head h / (NH/NKV). */
void lmf_fast_gqa_attention_kv_forward(float *out, float *scratch, const float *q, const float *kc,
                                       const float *vc, int past, int n, int NH, int NKV, int hs) {
    size_t qs = (size_t)NH * hs;
    kv_forward(out, qs, scratch, q, qs, kc, vc, (size_t)NKV * hs, past, n, NH, NH / NKV, hs);
}
