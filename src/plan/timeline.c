/* A pipeline schedule's timeline as text: one row per stage, one column per time unit. */
#include "plan/plan_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_UNITS 2000

static char op_letter(lmf_pp_op op) {
    switch (op) {
    case LMF_PP_FORWARD: return 'F';
    case LMF_PP_BACKWARD_WEIGHT: return 'W';
    default: return 'B';
    }
}

lmf_status lmf_plan_print_schedule(FILE *f, const lmf_pp_shape *sh) {
    LMF_TRY(lmf_pp_shape_check(sh));
    int P = sh->stages, M = sh->micro_batches, V = sh->virtual_stages;
    int zb = sh->schedule == LMF_PP_ZB_H1, n = lmf_pp_stage_actions(sh);
    lmf_pp_costs c = {1.0, zb ? 1.0 : 2.0, zb ? 1.0 : 0.0, 0.0};
    /* a bound on the makespan before simulating: every action of every stage one after another */
    double work = (double)M * V * (c.forward + c.backward + c.weight);
    if (work + 3.0 * (P - 1) > MAX_UNITS)
        return lmf_fail(LMF_ERR_ARG, "a timeline of %d stages and %d micro-batches is too wide to print "
                        "(more than %d time units); use fewer micro-batches", P, M, MAX_UNITS);
    lmf_pp_action *acts = malloc(sizeof *acts * (size_t)P * n);
    lmf_pp_timing *tim = malloc(sizeof *tim * (size_t)P * n);
    lmf_pp_stage_result *res = malloc(sizeof *res * (size_t)P);
    char *row = NULL;
    lmf_status st = LMF_OK;
    if (!acts || !tim || !res) {
        st = lmf_fail(LMF_ERR_NOMEM, "out of memory for a timeline of %d stages", P);
        goto done;
    }
    lmf_pp_summary sum;
    for (int s = 0; s < P && st == LMF_OK; s++) st = lmf_pp_schedule_actions(sh, s, acts + (size_t)s * n);
    if (st == LMF_OK) st = lmf_pp_simulate(sh, &c, res, tim, &sum);
    if (st != LMF_OK) goto done;

    char label[32];
    int width = snprintf(label, sizeof label, "B%d%s", M, V > 1 ? "a" : "") + 1;
    int units = (int)lround(sum.makespan);
    row = malloc((size_t)units * width + 1);
    if (!row) {
        st = lmf_fail(LMF_ERR_NOMEM, "out of memory for a timeline of %d units", units);
        goto done;
    }
    fprintf(f, "%s schedule: %d stage%s, %d micro-batch%s", lmf_pp_schedule_name(sh->schedule), P,
            P > 1 ? "s" : "", M, M > 1 ? "es" : "");
    if (V > 1) fprintf(f, ", %d model chunks per stage (a = first)", V);
    fprintf(f, "\none column per time unit: F forward (1 unit)%s; number = micro-batch; . idle\n\n",
            zb ? ", B input gradient (1), W weight gradient (1)" : ", B backward (2 units, two columns)");
    for (int s = 0; s < P; s++) {
        memset(row, ' ', (size_t)units * width);
        for (int u = 0; u < units; u++) row[(size_t)u * width] = '.';
        for (int i = 0; i < n; i++) {
            const lmf_pp_action *a = &acts[(size_t)s * n + i];
            int k = snprintf(label, sizeof label, "%c%d", op_letter(a->op), a->mb + 1);
            if (V > 1) snprintf(label + k, sizeof label - (size_t)k, "%c", 'a' + a->chunk % 26);
            int u0 = (int)lround(tim[(size_t)s * n + i].start), u1 = (int)lround(tim[(size_t)s * n + i].end);
            for (int u = u0; u < u1 && u < units; u++) {
                memset(row + (size_t)u * width, ' ', (size_t)width);
                memcpy(row + (size_t)u * width, label, strlen(label));
            }
        }
        int end = units * width;
        while (end > 0 && row[end - 1] == ' ') end--;
        fprintf(f, "stage %d | %.*s\n", s, end, row);
    }
    fprintf(f, "\nmakespan %d units of which each stage computes %.0f\n", units, work);
    for (int s = 0; s < P; s++) {
        int k = res[s].peak_inflight;
        fprintf(f, "stage %d  idle %5.1f%%  activations held at the peak: ", s, 100.0 * res[s].idle);
        if (V > 1) fprintf(f, "%d chunks (%.2f micro-batches of the stage's layers)\n", k, (double)k / V);
        else fprintf(f, "%d micro-batch%s\n", k, k == 1 ? "" : "es");
    }
    double want = 0.0;
    const char *form = NULL;
    switch (sh->schedule) {
    case LMF_PP_GPIPE:
    case LMF_PP_1F1B:
        want = (double)(P - 1) / (M + P - 1);
        form = "(P-1)/(M+P-1)";
        break;
    case LMF_PP_INTERLEAVED: /* chunks of the full F and B here: the step is V times longer */
        want = (double)(P - 1) / (V * M + P - 1);
        form = "(P-1)/(V M+P-1)";
        break;
    default:
        if (M >= P) {
            want = (double)(P - 1) / (3.0 * M + P - 1);
            form = "(P-1)(F+B-W)/makespan, Qi et al.";
        }
        break;
    }
    fprintf(f, "bubble %.1f%% of the step", 100.0 * sum.idle_max);
    if (form) fprintf(f, "; closed form %s = %.1f%%", form, 100.0 * want);
    fprintf(f, "\n");
done:
    free(acts), free(tim), free(res), free(row);
    return st;
}
