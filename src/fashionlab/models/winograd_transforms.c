/* The four tile transforms of Winograd F(4x4, 3x3) (winograd.py), fused with the tile gather and scatter.

   Written out as additions over channel-contiguous (NHWC) rows: torch can only express a transform as a
   36x36 matrix product over each flattened tile, 17 times the arithmetic of these sums at a third of the
   machine's peak (inner dimension 36), plus copies to gather the overlapping tiles and to scatter the
   results; here each tile is read once and written once. Tiles are numbered p = (image * th + i) * tw + j,
   the transformed tensors are [36][P][C] (tile position major, ready for 36 batched matrix products).
   Channels go 8 at a time in GCC vector types (one AVX register; any CPU GCC targets), so the callers
   need channel counts divisible by 8. Each function handles the images [b0, b1), so callers run disjoint ranges on separate threads: the input
   gradient's tiles overlap within an image, never across images. Compiled at first use by native.py. */

#include <string.h>

typedef float v8 __attribute__((vector_size(32), aligned(4))); /* aligned(4): loads and stores may be unaligned */

/* the 1-D transforms, one vector of 8 channels per element; t may be read with any stride */
#define BT6(d, o) do { \
    v8 d0 = d(0), d1 = d(1), d2 = d(2), d3 = d(3), d4 = d(4), d5 = d(5); \
    o(0) = 4 * d0 - 5 * d2 + d4;        o(1) = d3 + d4 - 4 * (d1 + d2); \
    o(2) = 4 * (d1 - d2) - d3 + d4;     o(3) = 2 * (d3 - d1) - d2 + d4; \
    o(4) = 2 * (d1 - d3) - d2 + d4;     o(5) = 4 * d1 - 5 * d3 + d5; } while (0)
#define B6(u, o) do { /* the transpose of BT6, for the input gradient */ \
    v8 u0 = u(0), u1 = u(1), u2 = u(2), u3 = u(3), u4 = u(4), u5 = u(5); \
    o(0) = 4 * u0;                                  o(1) = 4 * (u2 - u1 + u5) + 2 * (u4 - u3); \
    o(2) = -5 * u0 - 4 * (u1 + u2) - u3 - u4;       o(3) = u1 - u2 + 2 * (u3 - u4) - 5 * u5; \
    o(4) = u0 + u1 + u2 + u3 + u4;                  o(5) = u5; } while (0)
#define AT6(m, o) do { /* six to four */ \
    v8 s12 = m(1) + m(2), d12 = m(1) - m(2), s34 = m(3) + m(4), d34 = m(3) - m(4); \
    o(0) = m(0) + s12 + s34;    o(1) = d12 + 2 * d34; \
    o(2) = s12 + 4 * s34;       o(3) = d12 + 8 * d34 + m(5); } while (0)
#define A4(g, o) do { /* four to six, for the output gradient */ \
    v8 g0 = g(0), g1 = g(1), g2 = g(2), g3 = g(3), s02 = g0 + g2, s13 = g1 + g3, q = 4 * g2; \
    o(0) = g0;                  o(1) = s02 + s13;           o(2) = s02 - s13; \
    o(3) = g0 + 2 * g1 + q + 8 * g3;    o(4) = g0 - 2 * g1 + q - 8 * g3;    o(5) = g3; } while (0)

#define LOAD(ptr) (*(const v8 *)(ptr))
#define STORE(ptr, value) (*(v8 *)(ptr) = (value))

/* x: n,h,w,c -> v: [36][P][c]; the tile at (i, j) starts at row 4i-1, column 4j-1 (zero padding) */
void input_transform(const float *x, float *v, int n, int h, int w, int c, int b0, int b1) {
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    long plane = (long)n * th * tw * c;
    const v8 zero = {0};
    for (int b = b0; b < b1; b++)
        for (int i = 0; i < th; i++)
            for (int j = 0; j < tw; j++) {
                long p = ((long)b * th + i) * tw + j;
                const float *rows[6];
                int ok[6];
                for (int q = 0; q < 6; q++) {
                    int y = 4 * i - 1 + q, xc = 4 * j - 1 + q;
                    rows[q] = x + (((long)b * h + y) * w + 4 * j - 1) * c;
                    ok[q] = (y >= 0 && y < h) | (xc >= 0 && xc < w) << 1;
                }
                for (int cc = 0; cc < c; cc += 8) {
                    v8 t[6][6];
#define D(r) ((ok[r] & 1) && (ok[s] & 2) ? LOAD(rows[r] + s * c + cc) : zero)
#define T(r) t[r][s]
                    for (int s = 0; s < 6; s++) BT6(D, T);
#undef D
#undef T
                    float *out = v + p * c + cc;
                    for (int r = 0; r < 6; r++) {
#define R(s) t[r][s]
#define O(s) *(v8 *)(out + (r * 6 + s) * plane)
                        BT6(R, O);
#undef R
#undef O
                    }
                }
            }
}

/* m: [36][P][k] -> y: n,h,w,k (the 4x4 blocks, cropped to h x w), plus bias if not null */
void output_transform(const float *m, const float *bias, float *y, int n, int h, int w, int k, int b0, int b1) {
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    long plane = (long)n * th * tw * k;
    for (int b = b0; b < b1; b++)
        for (int i = 0; i < th; i++)
            for (int j = 0; j < tw; j++) {
                long p = ((long)b * th + i) * tw + j;
                int rows = h - 4 * i < 4 ? h - 4 * i : 4, cols = w - 4 * j < 4 ? w - 4 * j : 4;
                for (int kk = 0; kk < k; kk += 8) {
                    const float *in = m + p * k + kk;
                    v8 t[4][6], o[4], add = {0};
                    if (bias) add = LOAD(bias + kk);
                    for (int s = 0; s < 6; s++) {
#define M(r) LOAD(in + (r * 6 + s) * plane)
#define T(r) t[r][s]
                        AT6(M, T);
#undef M
#undef T
                    }
                    for (int r = 0; r < rows; r++) {
#define R(s) t[r][s]
#define O(s) o[s]
                        AT6(R, O);
#undef R
#undef O
                        float *dst = y + (((long)b * h + 4 * i + r) * w + 4 * j) * k + kk;
                        for (int s = 0; s < cols; s++) STORE(dst + s * k, o[s] + add);
                    }
                }
            }
}

/* dy: n,h,w,k -> dm: [36][P][k] = A g A^T for each 4x4 block g of the output gradient (zero past the crop) */
void output_grad_transform(const float *dy, float *dm, int n, int h, int w, int k, int b0, int b1) {
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    long plane = (long)n * th * tw * k;
    const v8 zero = {0};
    for (int b = b0; b < b1; b++)
        for (int i = 0; i < th; i++)
            for (int j = 0; j < tw; j++) {
                long p = ((long)b * th + i) * tw + j;
                int rows = h - 4 * i < 4 ? h - 4 * i : 4, cols = w - 4 * j < 4 ? w - 4 * j : 4;
                const float *src = dy + (((long)b * h + 4 * i) * w + 4 * j) * k;
                for (int kk = 0; kk < k; kk += 8) {
                    v8 t[6][4];
                    for (int s = 0; s < 4; s++) {
#define G(r) (r < rows && s < cols ? LOAD(src + ((long)r * w + s) * k + kk) : zero)
#define T(r) t[r][s]
                        A4(G, T);
#undef G
#undef T
                    }
                    float *out = dm + p * k + kk;
                    for (int r = 0; r < 6; r++) {
#define R(s) t[r][s]
#define O(s) *(v8 *)(out + (r * 6 + s) * plane)
                        A4(R, O);
#undef R
#undef O
                    }
                }
            }
}

/* dv: [36][P][c] -> dx: n,h,w,c, each tile's B dv B^T added where the tile lies (dx zeroed by the caller) */
void input_grad_transform(const float *dv, float *dx, int n, int h, int w, int c, int b0, int b1) {
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    long plane = (long)n * th * tw * c;
    for (int b = b0; b < b1; b++)
        for (int i = 0; i < th; i++)
            for (int j = 0; j < tw; j++) {
                long p = ((long)b * th + i) * tw + j;
                for (int cc = 0; cc < c; cc += 8) {
                    const float *in = dv + p * c + cc;
                    v8 t[6][6], o[6];
                    for (int s = 0; s < 6; s++) {
#define U(r) LOAD(in + (r * 6 + s) * plane)
#define T(r) t[r][s]
                        B6(U, T);
#undef U
#undef T
                    }
                    for (int r = 0; r < 6; r++) {
                        int yy = 4 * i - 1 + r;
                        if (yy < 0 || yy >= h) continue;
#define R(s) t[r][s]
#define O(s) o[s]
                        B6(R, O);
#undef R
#undef O
                        for (int s = 0; s < 6; s++) {
                            int xx = 4 * j - 1 + s;
                            if (xx < 0 || xx >= w) continue;
                            float *dst = dx + (((long)b * h + yy) * w + xx) * c + cc;
                            STORE(dst, LOAD(dst) + o[s]);
                        }
                    }
                }
            }
}
