/* Peak fp32 FMA throughput microbenchmark. */
#include "lmforge/perf.h"

#include <immintrin.h>
#include <omp.h>
#include <time.h>

#include "lmforge/system.h"

#define PEAK_ACC 12           /* independent accumulators: > FMA latency (4) x pipes (2) */
#define PEAK_INNER 4096       /* iterations between clock reads */
#define PEAK_MAX_THREADS 256

/* CPU time of the calling thread in seconds */
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs PEAK_INNER x PEAK_ACC FMAs on 8 lanes per call; returns a value depending on all of
 * them so nothing can be dropped. a*x+b with a < 1 converges, so no overflow or denormals. */
static float fma_block(__m256 *acc, long rounds) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    __m256 r0 = acc[0], r1 = acc[1], r2 = acc[2], r3 = acc[3], r4 = acc[4], r5 = acc[5];
    __m256 r6 = acc[6], r7 = acc[7], r8 = acc[8], r9 = acc[9], r10 = acc[10], r11 = acc[11];
    for (long i = 0; i < rounds; i++) {
        r0 = _mm256_fmadd_ps(r0, a, b);
        r1 = _mm256_fmadd_ps(r1, a, b);
        r2 = _mm256_fmadd_ps(r2, a, b);
        r3 = _mm256_fmadd_ps(r3, a, b);
        r4 = _mm256_fmadd_ps(r4, a, b);
        r5 = _mm256_fmadd_ps(r5, a, b);
        r6 = _mm256_fmadd_ps(r6, a, b);
        r7 = _mm256_fmadd_ps(r7, a, b);
        r8 = _mm256_fmadd_ps(r8, a, b);
        r9 = _mm256_fmadd_ps(r9, a, b);
        r10 = _mm256_fmadd_ps(r10, a, b);
        r11 = _mm256_fmadd_ps(r11, a, b);
    }
    acc[0] = r0; acc[1] = r1; acc[2] = r2; acc[3] = r3; acc[4] = r4; acc[5] = r5;
    acc[6] = r6; acc[7] = r7; acc[8] = r8; acc[9] = r9; acc[10] = r10; acc[11] = r11;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3)),
                             _mm256_add_ps(_mm256_add_ps(r4, r5), _mm256_add_ps(r6, r7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(r8, r9), _mm256_add_ps(r10, r11)));
    return _mm256_cvtss_f32(s);
}

/* FMAs of `threads` threads for about `seconds` of wall time. running = 0: GFLOP/s over the
 * wall time of the set; running = 1: the sum over threads of each one's FLOPs over its own CPU
 * time (the time it actually ran), which other processes taking the cores do not lower. */
static double measure(int threads, double seconds, int running) {
    if (threads <= 0) threads = omp_get_max_threads();
    if (threads > PEAK_MAX_THREADS) threads = PEAK_MAX_THREADS;
    if (!(seconds >= 0.01)) seconds = 0.01;
    if (seconds > 10.0) seconds = 10.0;
    long rounds[PEAK_MAX_THREADS] = {0};
    double t_end[PEAK_MAX_THREADS] = {0}, cpu[PEAK_MAX_THREADS] = {0};
    volatile float sink = 0.0f;
    double t0 = 0.0;
#pragma omp parallel num_threads(threads)
    {
        int id = omp_get_thread_num();
        __m256 acc[PEAK_ACC];
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm256_set1_ps((float)(i + id));
        fma_block(acc, PEAK_INNER); /* warm up: clocks, caches */
#pragma omp barrier
#pragma omp single
        t0 = lmf_now_s();
        double c0 = thread_cpu_s();
        long n = 0;
        double t;
        float s = 0.0f;
        do {
            s += fma_block(acc, PEAK_INNER);
            n += PEAK_INNER;
            t = lmf_now_s();
        } while (t - t0 < seconds);
        rounds[id] = n;
        t_end[id] = t;
        cpu[id] = thread_cpu_s() - c0;
#pragma omp atomic
        sink += s;
    }
    (void)sink;
    double total = 0.0, last = t0, rate = 0.0;
    int nt = threads;
    for (int i = 0; i < nt; i++) {
        double flops = (double)rounds[i] * PEAK_ACC * 8 * 2; /* 8 lanes, 2 flops per FMA */
        total += flops;
        if (t_end[i] > last) last = t_end[i];
        if (cpu[i] > 0) rate += flops / cpu[i];
    }
    if (running) return rate * 1e-9;
    return last > t0 ? total / (last - t0) * 1e-9 : 0.0;
}

double lmf_peak_gflops(int threads, double seconds) { return measure(threads, seconds, 0); }

double lmf_peak_gflops_running(int threads, double seconds) { return measure(threads, seconds, 1); }
