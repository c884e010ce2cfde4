/* Memory-bandwidth kernels for probes.bandwidth, called through ctypes from
 * Python threads (ctypes releases the GIL). Single-threaded on purpose: the
 * caller splits the arrays across threads. Eight accumulators keep the read
 * kernel memory-bound without -ffast-math. */
#include <stddef.h>

double fc_read(const double *a, size_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
        s4 += a[i + 4]; s5 += a[i + 5]; s6 += a[i + 6]; s7 += a[i + 7];
    }
    for (; i < n; i++) s0 += a[i];
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

void fc_copy(double *restrict c, const double *restrict a, size_t n) {
    for (size_t i = 0; i < n; i++) c[i] = a[i];
}

void fc_triad(double *restrict a, const double *restrict b, const double *restrict c, double s, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

void fc_fill(double *a, double v, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = v;
}
