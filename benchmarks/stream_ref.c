/* STREAM-style reference for benchmarks/probe_vs_reference.py.
 * OpenMP over all cores; read (sum), copy and triad counted as STREAM does
 * (8, 16, 24 bytes per element, write-allocate not counted). Best of reps.
 * Build: gcc -O3 -march=native -fopenmp -fno-tree-loop-distribute-patterns */
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: stream_ref N_ELEMENTS [REPS]\n"); return 2; }
    size_t n = strtoull(argv[1], 0, 10);
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    double *a = malloc(n * sizeof(double)), *b = malloc(n * sizeof(double)), *c = malloc(n * sizeof(double));
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); return 1; }
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) { a[i] = 1.0; b[i] = 2.0; c[i] = 0.5; }
    double best[3] = {1e30, 1e30, 1e30}, sink = 0;
    for (int r = 0; r < reps; r++) {
        double t = omp_get_wtime(), s = 0;
        #pragma omp parallel for simd reduction(+:s)
        for (size_t i = 0; i < n; i++) s += a[i];
        t = omp_get_wtime() - t; if (t < best[0]) best[0] = t; sink += s;
        t = omp_get_wtime();
        #pragma omp parallel for
        for (size_t i = 0; i < n; i++) c[i] = a[i];
        t = omp_get_wtime() - t; if (t < best[1]) best[1] = t;
        t = omp_get_wtime();
        #pragma omp parallel for
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0 * c[i];
        t = omp_get_wtime() - t; if (t < best[2]) best[2] = t;
    }
    printf("{\"read_gbps\": %.4f, \"copy_gbps\": %.4f, \"triad_gbps\": %.4f, \"threads\": %d, \"array_bytes\": %zu, \"sink\": %g}\n",
           8.0 * n / best[0] / 1e9, 16.0 * n / best[1] / 1e9, 24.0 * n / best[2] / 1e9,
           omp_get_max_threads(), n * sizeof(double), sink);
    return 0;
}
