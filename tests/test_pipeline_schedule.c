/* Pipeline schedules: every schedule completes for P 1..8, M 1..16, V 1..2 with each action once
 * and every dependency honoured (checked here from the virtual-stage rule, not from the
 * library's list); the simulation against the closed forms of GPipe, 1F1B (Narayanan et al.
 * 2021, Sec. 2.2), interleaved 1F1B (Sec. 2.2.2) and ZB-H1 (Qi et al., ICLR 2024); peaks of
 * activations held; the steady state the planner relies on; names and bad shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/pipeline.h"

static const lmf_pp_schedule all_schedules[] = {LMF_PP_GPIPE, LMF_PP_1F1B, LMF_PP_INTERLEAVED,
                                                LMF_PP_ZB_H1};

static void test_names(void **state) {
    (void)state;
    const char *want[] = {"gpipe", "1f1b", "interleaved", "zb"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(lmf_pp_schedule_name(all_schedules[i]), want[i]);
        lmf_pp_schedule s = LMF_PP_NSCHEDULES;
        assert_int_equal(lmf_pp_schedule_parse(want[i], &s), LMF_OK);
        assert_int_equal(s, all_schedules[i]);
    }
    lmf_pp_schedule s;
    assert_int_equal(lmf_pp_schedule_parse("pipedream", &s), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "'pipedream'"));
    assert_non_null(strstr(lmf_last_error(), "gpipe, 1f1b, interleaved or zb"));
    assert_null(lmf_pp_schedule_name(LMF_PP_NSCHEDULES));
    assert_int_equal(LMF_PP_1F1B, 0); /* the zero value is the default schedule */
    /* comma lists: a bitmask of the named schedules; empty names and unknown ones refused */
    unsigned mask = 0;
    assert_int_equal(lmf_pp_schedule_parse_list("zb,1f1b", &mask), LMF_OK);
    assert_int_equal(mask, (1u << LMF_PP_ZB_H1) | (1u << LMF_PP_1F1B));
    assert_int_equal(lmf_pp_schedule_parse_list("interleaved", &mask), LMF_OK);
    assert_int_equal(mask, 1u << LMF_PP_INTERLEAVED);
    const char *bad[] = {"", ",", "1f1b,", "1f1b,,zb", "zb,pipedream", NULL};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(lmf_pp_schedule_parse_list(bad[i], &mask), LMF_ERR_ARG);
        assert_int_equal(mask, 0);
    }
}

/* Whether a shape is one the schedules refuse, by the documented rules. */
static int refused(const lmf_pp_shape *sh) {
    if (sh->virtual_stages > 1 && sh->schedule != LMF_PP_INTERLEAVED) return 1;
    return sh->virtual_stages > 1 && sh->micro_batches % sh->stages != 0;
}

static int row_of(lmf_pp_op op) {
    return op == LMF_PP_FORWARD ? 0 : op == LMF_PP_BACKWARD_WEIGHT ? 2 : 1;
}

/* Run one shape with uneven costs and a message time, and check it action by action. */
static void check_shape(const lmf_pp_shape *sh) {
    int P = sh->stages, M = sh->micro_batches, V = sh->virtual_stages;
    int zb = sh->schedule == LMF_PP_ZB_H1, n = lmf_pp_stage_actions(sh);
    assert_int_equal(n, (zb ? 3 : 2) * M * V);
    lmf_pp_costs c = {1.0, zb ? 1.25 : 2.0, zb ? 0.75 : 0.0, 0.125};
    lmf_pp_action *acts = malloc(sizeof *acts * (size_t)P * n);
    lmf_pp_timing *tim = malloc(sizeof *tim * (size_t)P * n);
    lmf_pp_stage_result *res = malloc(sizeof *res * (size_t)P);
    /* [virtual stage][row][mb]: index of the action in acts, or -1 */
    int VS = P * V;
    int *where = malloc(sizeof *where * (size_t)VS * 3 * M);
    assert_non_null(acts), assert_non_null(tim), assert_non_null(res), assert_non_null(where);
    for (int i = 0; i < VS * 3 * M; i++) where[i] = -1;
    for (int s = 0; s < P; s++) {
        assert_int_equal(lmf_pp_schedule_actions(sh, s, acts + (size_t)s * n), LMF_OK);
        for (int i = 0; i < n; i++) {
            lmf_pp_action a = acts[(size_t)s * n + i];
            if (zb) assert_true(a.op != LMF_PP_BACKWARD);
            else assert_true(a.op == LMF_PP_FORWARD || a.op == LMF_PP_BACKWARD);
            assert_true(a.mb >= 0 && a.mb < M && a.chunk >= 0 && a.chunk < V);
            int *w = &where[((a.chunk * P + s) * 3 + row_of(a.op)) * M + a.mb];
            if (*w != -1) fail_msg("%s P=%d M=%d V=%d: stage %d repeats op %d of mb %d chunk %d",
                                   lmf_pp_schedule_name(sh->schedule), P, M, V, s, a.op, a.mb, a.chunk);
            *w = s * n + i;
        }
    }
    /* each (mb, chunk) once per op: n actions per stage, none repeated, so every slot is used */
    for (int vs = 0; vs < VS; vs++)
        for (int r = 0; r < (zb ? 3 : 2); r++)
            for (int mb = 0; mb < M; mb++) assert_true(where[(vs * 3 + r) * M + mb] >= 0);

    lmf_pp_summary sum;
    assert_int_equal(lmf_pp_simulate(sh, &c, res, tim, &sum), LMF_OK);
    double last_end = 0.0;
    for (int s = 0; s < P; s++) {
        double prev = 0.0, busy = 0.0;
        for (int i = 0; i < n; i++) {
            lmf_pp_timing t = tim[(size_t)s * n + i];
            lmf_pp_action a = acts[(size_t)s * n + i];
            double cost = a.op == LMF_PP_FORWARD ? c.forward : a.op == LMF_PP_BACKWARD_WEIGHT ? c.weight : c.backward;
            assert_true(t.start >= prev - 1e-12);                 /* one action at a time, in order */
            assert_true(fabs(t.end - t.start - cost) < 1e-9);
            prev = t.end;
            busy += cost;
            int vs = a.chunk * P + s;
            /* the dependencies, from the virtual-stage rule: forwards flow from virtual stage
             * vs - 1, backwards (input halves) from vs + 1, each after the stage's own forward;
             * weight halves after their input half */
#define AFTER(vs2, row, hop)                                                                   \
    do {                                                                                       \
        int j = where[((vs2) * 3 + (row)) * M + a.mb];                                         \
        double need = tim[j].end + ((hop) ? c.p2p : 0.0);                                      \
        if (t.start < need - 1e-9)                                                             \
            fail_msg("%s P=%d M=%d V=%d: stage %d op %d mb %d chunk %d starts at %g before %g", \
                     lmf_pp_schedule_name(sh->schedule), P, M, V, s, a.op, a.mb, a.chunk,       \
                     t.start, need);                                                           \
    } while (0)
            if (a.op == LMF_PP_FORWARD && vs > 0) AFTER(vs - 1, 0, (vs - 1) % P != s);
            if (a.op == LMF_PP_BACKWARD || a.op == LMF_PP_BACKWARD_INPUT) {
                AFTER(vs, 0, 0);
                if (vs < VS - 1) AFTER(vs + 1, 1, (vs + 1) % P != s);
            }
            if (a.op == LMF_PP_BACKWARD_WEIGHT) AFTER(vs, 1, 0);
#undef AFTER
        }
        assert_true(fabs(res[s].busy - busy) < 1e-9);
        assert_true(fabs(res[s].idle - (1.0 - busy / sum.makespan)) < 1e-9);
        if (prev > last_end) last_end = prev;
    }
    assert_true(fabs(sum.makespan - last_end) < 1e-12);
    free(acts), free(tim), free(res), free(where);
}

static void test_every_schedule_completes(void **state) {
    (void)state;
    int ran = 0, refusals = 0;
    for (int k = 0; k < 4; k++)
        for (int P = 1; P <= 8; P++)
            for (int M = 1; M <= 16; M++)
                for (int V = 1; V <= 2; V++) {
                    lmf_pp_shape sh = {all_schedules[k], P, M, V};
                    lmf_status st = lmf_pp_shape_check(&sh);
                    if (refused(&sh)) {
                        assert_int_equal(st, LMF_ERR_ARG);
                        lmf_pp_action a[1];
                        assert_int_equal(lmf_pp_schedule_actions(&sh, 0, a), LMF_ERR_ARG);
                        refusals++;
                        continue;
                    }
                    assert_int_equal(st, LMF_OK);
                    check_shape(&sh);
                    ran++;
                }
    /* 4 schedules x 8 x 16 with V = 1, and the interleaved one's V = 2 shapes with P | M */
    int interleaved2 = 0;
    for (int P = 1; P <= 8; P++) interleaved2 += 16 / P;
    assert_int_equal(ran, 4 * 8 * 16 + interleaved2);
    assert_int_equal(refusals, 4 * 8 * 16 - interleaved2);
}

static lmf_pp_summary simulate(lmf_pp_schedule k, int P, int M, int V, lmf_pp_costs c,
                               lmf_pp_stage_result *res) {
    lmf_pp_shape sh = {k, P, M, V};
    lmf_pp_summary s;
    assert_int_equal(lmf_pp_simulate(&sh, &c, res, NULL, &s), LMF_OK);
    return s;
}

/* GPipe and 1F1B with F = B, no message time: every stage idles (P - 1)(F + B), a fraction
 * (P - 1)/(M + P - 1) of the step (Narayanan et al. 2021, Sec. 2.2). Here F = B = 1 (the
 * backward counted whole), so a micro-batch takes 2. */
static void test_gpipe_1f1b_bubble(void **state) {
    (void)state;
    lmf_pp_stage_result res[8];
    for (int k = 0; k < 2; k++)
        for (int P = 1; P <= 8; P++)
            for (int M = 1; M <= 16; M++) {
                lmf_pp_summary s = simulate(k ? LMF_PP_1F1B : LMF_PP_GPIPE, P, M, 1,
                                            (lmf_pp_costs){1, 1, 0, 0}, res);
                assert_true(fabs(s.makespan - 2.0 * (M + P - 1)) < 1e-9);
                double want = (double)(P - 1) / (M + P - 1);
                for (int st = 0; st < P; st++) assert_true(fabs(res[st].idle - want) < 1e-12);
                /* activations: GPipe holds all M on every stage; 1F1B min(P - s, M) on stage s */
                for (int st = 0; st < P; st++)
                    assert_int_equal(res[st].peak_inflight, k ? (P - st < M ? P - st : M) : M);
            }
}

/* Interleaved 1F1B over V chunks, each chunk F/V and B/V: the bubble shrinks to
 * (P - 1)(F + B)/V (Narayanan et al. 2021, Sec. 2.2.2), a fraction (P - 1)/(V M + P - 1) of the
 * step. Stage 0 holds 2(P - 1) + (V - 1)P + 1 chunks' activations (Megatron-LM's warm-up plus
 * one), P + (P - 1)/V micro-batches of its layers (Korthikanti et al. 2022), at most all M V. */
static void test_interleaved_bubble(void **state) {
    (void)state;
    lmf_pp_stage_result res[8];
    for (int V = 2; V <= 4; V++)
        for (int P = 2; P <= 8; P++)
            for (int M = P; M <= 32; M += P) {
                lmf_pp_summary s = simulate(LMF_PP_INTERLEAVED, P, M, V,
                                            (lmf_pp_costs){1.0 / V, 2.0 / V, 0, 0}, res);
                double want = (double)(P - 1) / (V * M + P - 1);
                assert_true(fabs(s.makespan - (3.0 * M + 3.0 * (P - 1) / V)) < 1e-9);
                assert_true(fabs(s.idle_max - want) < 1e-12);
                int peak = 2 * (P - 1) + (V - 1) * P + 1;
                assert_int_equal(s.peak_first, peak < M * V ? peak : M * V);
                /* fewer than 1F1B's P micro-batches' layers, less than GPipe's bubble */
                assert_true(s.idle_max < (double)(P - 1) / (M + P - 1));
            }
    /* V = 1 is plain 1F1B, action for action */
    lmf_pp_shape a = {LMF_PP_INTERLEAVED, 4, 6, 1}, b = {LMF_PP_1F1B, 4, 6, 1};
    lmf_pp_action x[12], y[12];
    for (int s = 0; s < 4; s++) {
        assert_int_equal(lmf_pp_schedule_actions(&a, s, x), LMF_OK);
        assert_int_equal(lmf_pp_schedule_actions(&b, s, y), LMF_OK);
        assert_memory_equal(x, y, sizeof x);
    }
}

/* ZB-H1 with F = B = W: each stage idles (P - 1)(F + B - W) = P - 1 (Qi et al. 2024, Sec. 3),
 * a third of 1F1B's (P - 1)(F + B + W) when M >= P, with 1F1B's peak of P micro-batches. */
static void test_zero_bubble(void **state) {
    (void)state;
    lmf_pp_stage_result res[8];
    for (int P = 1; P <= 8; P++)
        for (int M = 1; M <= 24; M++) {
            lmf_pp_summary zb = simulate(LMF_PP_ZB_H1, P, M, 1, (lmf_pp_costs){1, 1, 1, 0}, res);
            lmf_pp_summary f1 = simulate(LMF_PP_1F1B, P, M, 1, (lmf_pp_costs){1, 2, 0, 0}, NULL);
            double idle_zb = zb.makespan - 3.0 * M, idle_1f1b = f1.makespan - 3.0 * M;
            assert_true(fabs(idle_1f1b - 3.0 * (P - 1)) < 1e-9);
            if (M >= P) assert_true(fabs(idle_zb - (P - 1)) < 1e-9);
            assert_true(idle_zb <= idle_1f1b + 1e-9);
            assert_int_equal(zb.peak_max, f1.peak_max);
            assert_int_equal(zb.peak_first, f1.peak_first);
            for (int s = 0; s < P; s++) assert_true(res[s].peak_inflight <= P);
        }
    /* the paper's figure: P = 4, M = 8 */
    lmf_pp_summary zb = simulate(LMF_PP_ZB_H1, 4, 8, 1, (lmf_pp_costs){1, 1, 1, 0}, NULL);
    lmf_pp_summary f1 = simulate(LMF_PP_1F1B, 4, 8, 1, (lmf_pp_costs){1, 2, 0, 0}, NULL);
    assert_true(fabs((zb.makespan - 24.0) / (f1.makespan - 24.0) - 1.0 / 3.0) < 1e-12);
}

/* Message time: with p2p = h and F = B, a 1F1B micro-batch's forward and backward each cross
 * P - 1 links once on the way through the fill and the drain: makespan = (M + P - 1)(F + B) +
 * 2 (P - 1) h. */
static void test_p2p(void **state) {
    (void)state;
    for (int P = 1; P <= 6; P++) {
        lmf_pp_summary s = simulate(LMF_PP_GPIPE, P, 5, 1, (lmf_pp_costs){1, 1, 0, 0.5}, NULL);
        assert_true(fabs(s.makespan - (2.0 * (5 + P - 1) + 2.0 * (P - 1) * 0.5)) < 1e-9);
    }
    /* slower links never make a step shorter */
    for (int k = 0; k < 4; k++) {
        int V = all_schedules[k] == LMF_PP_INTERLEAVED ? 2 : 1;
        double last = 0.0;
        for (int i = 0; i <= 4; i++) {
            lmf_pp_summary s = simulate(all_schedules[k], 4, 8, V, (lmf_pp_costs){1, 2, 1, 0.25 * i}, NULL);
            assert_true(s.makespan >= last);
            last = s.makespan;
        }
    }
}

/* Past lmf_pp_steady_micro_batches, one more micro-batch adds exactly its work to the step and
 * nothing to the activations held, for every stage count tried here and several cost ratios,
 * when messages take no time (with message time the steady state of 1F1B itself waits on the
 * round trip between stages). */
static void test_steady_state(void **state) {
    (void)state;
    const lmf_pp_costs costs[] = {{1, 2, 0, 0}, {1, 1, 1, 0}, {1, 1.5, 0.6, 0}, {0.7, 1.1, 0.9, 0}};
    for (int k = 0; k < 4; k++)
        for (int P = 1; P <= 8; P++)
            for (int V = 1; V <= (all_schedules[k] == LMF_PP_INTERLEAVED ? 3 : 1); V++) {
                int m0 = lmf_pp_steady_micro_batches(all_schedules[k], P, V);
                if (all_schedules[k] == LMF_PP_GPIPE) {
                    assert_int_equal(m0, INT_MAX);
                    continue;
                }
                int step = V > 1 ? P : 1;
                for (int ci = 0; ci < 4; ci++) {
                    lmf_pp_costs c = costs[ci];
                    if (all_schedules[k] != LMF_PP_ZB_H1) c.backward += c.weight;
                    double per = c.forward + c.backward + (all_schedules[k] == LMF_PP_ZB_H1 ? c.weight : 0.0);
                    lmf_pp_stage_result r0[8], r[8];
                    lmf_pp_summary s0 = simulate(all_schedules[k], P, m0, V, c, r0);
                    for (int M = m0 + step; M <= m0 + 3 * P; M += step) {
                        lmf_pp_summary s = simulate(all_schedules[k], P, M, V, c, r);
                        for (int st = 0; st < P; st++) assert_int_equal(r[st].peak_inflight, r0[st].peak_inflight);
                        double grow = s.makespan - s0.makespan, want = (M - m0) * V * per;
                        if (fabs(grow - want) > 1e-9)
                            fail_msg("%s P=%d V=%d costs %d: M=%d adds %g over M=%d, expected %g",
                                     lmf_pp_schedule_name(all_schedules[k]), P, V, ci, M, grow, m0, want);
                        assert_int_equal(s.peak_max, s0.peak_max);
                        assert_int_equal(s.peak_first, s0.peak_first);
                    }
                }
            }
}

/* With equal stages and no message time, the bubble of GPipe, 1F1B and the interleaved
 * schedule in micro-batch slots does not depend on how a slot splits into forward and backward
 * (the planner simulates them at 1 : 2 and caches by shape). */
static void test_split_independent(void **state) {
    (void)state;
    const double fs[] = {0.05, 0.2, 1.0 / 3.0, 0.5, 0.8, 0.97};
    for (int k = 0; k < 3; k++)
        for (int P = 1; P <= 20; P += P < 8 ? 1 : 6)
            for (int V = 1; V <= (all_schedules[k] == LMF_PP_INTERLEAVED ? 4 : 1); V++)
                for (int M = 1; M <= 2 * P + 3; M++) {
                    if (V > 1 && M % P) continue;
                    double ref = 0.0;
                    for (int i = 0; i < 6; i++) {
                        lmf_pp_summary s = simulate(all_schedules[k], P, M, V,
                                                    (lmf_pp_costs){fs[i] / V, (1 - fs[i]) / V, 0, 0}, NULL);
                        double bubble = s.makespan - M;
                        if (i == 0) ref = bubble;
                        else if (fabs(bubble - ref) > 1e-9)
                            fail_msg("%s P=%d M=%d V=%d: bubble %g slots with forward share %g, %g with %g",
                                     lmf_pp_schedule_name(all_schedules[k]), P, M, V, bubble, fs[i], ref, fs[0]);
                    }
                }
}

/* the costliest stage of a split: layers plus the ends' extra work */
static double split_cost(const int *k, int n, double first, double last) {
    double worst = 0.0;
    for (int q = 0; q < n; q++) {
        double c = k[q] + (q == 0 ? first : 0.0) + (q == n - 1 ? last : 0.0);
        if (c > worst) worst = c;
    }
    return worst;
}

/* the smallest costliest stage over every split of L layers into n stages (each >= 1), by
 * enumerating them */
static double best_by_enumeration(int L, int n, double first, double last, int *k, int q,
                                  int left) {
    if (q == n - 1) {
        k[q] = left;
        return split_cost(k, n, first, last);
    }
    double best = INFINITY;
    for (int x = 1; x <= left - (n - 1 - q); x++) {
        k[q] = x;
        double c = best_by_enumeration(L, n, first, last, k, q + 1, left - x);
        if (c < best) best = c;
    }
    return best;
}

/* lmf_pp_layers_balanced: no extra work gives lmf_pp_layers' even split; with extra work its
 * costliest stage is the smallest any split reaches (every split enumerated), GPT-2 124M's
 * classifier (about 5.2 layers' FLOPs at T = 256) moves layers to the first stage; bad input */
static void test_balanced_layers(void **state) {
    (void)state;
    int got[16], even[16], k[16];
    for (int L = 1; L <= 16; L++)
        for (int n = 1; n <= L && n <= 16; n++) {
            assert_int_equal(lmf_pp_layers_balanced(L, n, 0.0, 0.0, got), LMF_OK);
            assert_int_equal(lmf_pp_layers(L, n, NULL, even), LMF_OK);
            for (int q = 0; q < n; q++) assert_int_equal(got[q], even[q]);
        }
    const double extras[] = {0.0, 0.3, 1.0, 2.5, 5.2, 11.0};
    for (int L = 1; L <= 10; L++)
        for (int n = 1; n <= L && n <= 4; n++)
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++) {
                    double first = extras[a], last = extras[b];
                    assert_int_equal(lmf_pp_layers_balanced(L, n, first, last, got), LMF_OK);
                    int sum = 0;
                    for (int q = 0; q < n; q++) {
                        assert_true(got[q] >= 1);
                        sum += got[q];
                    }
                    assert_int_equal(sum, L);
                    double want = best_by_enumeration(L, n, first, last, k, 0, L);
                    if (fabs(split_cost(got, n, first, last) - want) > 1e-9)
                        fail_msg("L=%d n=%d extras %g, %g: costliest stage %g, best %g", L, n,
                                 first, last, split_cost(got, n, first, last), want);
                }
    assert_int_equal(lmf_pp_layers_balanced(12, 2, 0.0, 5.2, got), LMF_OK);
    assert_int_equal(got[0], 9); /* 9 against 3 + 5.2: 8 and 4 + 5.2 would cost 9.2 */
    assert_int_equal(got[1], 3);
    assert_int_equal(lmf_pp_layers_balanced(3, 4, 0.0, 0.0, got), LMF_ERR_ARG);
    assert_int_equal(lmf_pp_layers_balanced(3, 0, 0.0, 0.0, got), LMF_ERR_ARG);
    assert_int_equal(lmf_pp_layers_balanced(3, 2, -1.0, 0.0, got), LMF_ERR_ARG);
    assert_int_equal(lmf_pp_layers_balanced(3, 2, 0.0, NAN, got), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "finite"));
}

static void test_bad_input(void **state) {
    (void)state;
    lmf_pp_summary s;
    lmf_pp_shape sh = {LMF_PP_1F1B, 4, 8, 1};
    lmf_pp_costs c = {1, -2, 0, 0};
    assert_int_equal(lmf_pp_simulate(&sh, &c, NULL, NULL, &s), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "not negative"));
    c.backward = NAN;
    assert_int_equal(lmf_pp_simulate(&sh, &c, NULL, NULL, &s), LMF_ERR_ARG);
    lmf_pp_action a[16];
    assert_int_equal(lmf_pp_schedule_actions(&sh, 4, a), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "outside 0..3"));
    sh.stages = 0;
    assert_int_equal(lmf_pp_shape_check(&sh), LMF_ERR_ARG);
    sh = (lmf_pp_shape){LMF_PP_ZB_H1, 4, 8, 2};
    assert_int_equal(lmf_pp_shape_check(&sh), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "interleaved"));
    sh = (lmf_pp_shape){LMF_PP_INTERLEAVED, 4, 6, 2};
    assert_int_equal(lmf_pp_shape_check(&sh), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "multiple"));
    sh = (lmf_pp_shape){LMF_PP_1F1B, 1 << 20, 1 << 20, 1};
    assert_int_equal(lmf_pp_shape_check(&sh), LMF_ERR_ARG);
    sh = (lmf_pp_shape){(lmf_pp_schedule)7, 2, 2, 1};
    assert_int_equal(lmf_pp_shape_check(&sh), LMF_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_every_schedule_completes),
        cmocka_unit_test(test_gpipe_1f1b_bubble),
        cmocka_unit_test(test_interleaved_bubble),
        cmocka_unit_test(test_zero_bubble),
        cmocka_unit_test(test_p2p),
        cmocka_unit_test(test_steady_state),
        cmocka_unit_test(test_split_independent),
        cmocka_unit_test(test_balanced_layers),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
