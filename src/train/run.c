/* The training loop and its policy: steps, metrics.jsonl, evaluation, checkpoints, stopping
 * every rank after the same step, and the run directory's model and loss chart at the end. */
#include "lmforge/train.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "lmforge/metrics.h"
#include "lmforge/rundir.h"
#include "lmforge/system.h"
#include "lmforge/formats.h"
#include "train/sample.h"

/* metrics.jsonl lines for one step (rank 0) */
static void record_step(lmf_metrics *mx, const lmf_step_stats *st) {
    if (!mx) return;
    if (st->skipped) {
        int nan = isnan(st->loss) || isnan(st->grad_norm);
        lmf_metrics_skip(mx, st->step, nan ? "nan" : "inf", st->bad_in_row);
    } else {
        lmf_metrics_step(mx, st->step, st->loss, st->lr, st->grad_norm, st->tokens_per_s, st->mfu);
    }
    if (st->spike) lmf_metrics_spike(mx, st->step, st->loss, st->loss_mean);
    if (st->rolled_back_to >= 0) lmf_metrics_rollback(mx, st->step, st->rolled_back_to);
}

/* a step timed by phase: the model's kernels (lmf_gpt_profile), the optimizer, the
 * data-parallel communication (in runs of more than one replica) and the rest of the step
 * ("other": data, the engine's bookkeeping, what no phase covers) */
static void record_phases(lmf_metrics *mx, lmf_trainer *t, const lmf_step_stats *st) {
    struct lmf_gpt *m = lmf_trainer_model(t);
    double ph[LMF_PHASE_COUNT], s[LMF_PHASE_COUNT + 3], sum = 0;
    const char *names[LMF_PHASE_COUNT + 3];
    lmf_rank_layout rl;
    lmf_trainer_ranks(t, &rl);
    lmf_gpt_profile_read(m, ph);
    ph[LMF_PHASE_TP_COMM] += st->tp_grads_s; /* the gradients' sum, outside the model */
    int n = 0;
    for (int p = 0; p < LMF_PHASE_COUNT; p++) {
        if (p == LMF_PHASE_TP_COMM && rl.tp == 1) continue; /* no tensor parallelism */
        names[n] = lmf_phase_name((lmf_phase)p);
        s[n++] = ph[p];
    }
    names[n] = "optimizer";
    s[n++] = st->optimizer_s;
    if (rl.dp > 1) {
        names[n] = "dp_comm";
        s[n++] = st->dp_comm_s;
    }
    for (int i = 0; i < n; i++) sum += s[i];
    names[n] = "other";
    s[n++] = st->seconds > sum ? st->seconds - sum : 0;
    if (mx) lmf_metrics_phases(mx, st->step, st->seconds, n, names, s);
}

/* collective: every rank's peak resident memory, written by rank 0 (one small all-reduce per
 * rank, every profile_every steps) */
static void record_memory(lmf_metrics *mx, lmf_trainer *t, int step) {
    int world = lmf_trainer_world(t), rank = lmf_trainer_rank(t);
    int64_t rss[256];
    if (world > (int)(sizeof rss / sizeof rss[0])) world = (int)(sizeof rss / sizeof rss[0]);
    int64_t kib = (int64_t)(lmf_peak_rss_bytes() / 1024);
    if (kib > 2000000000) kib = 2000000000;
    for (int r = 0; r < world; r++)
        rss[r] = (int64_t)lmf_trainer_any(t, rank == r ? (int)kib : 0) * 1024;
    if (mx) lmf_metrics_memory(mx, step, rss, world);
}

/* collective (where the weights are spread over the ranks): rank 0 writes a sample of the
 * model's text after `done` steps */
static lmf_status record_sample(lmf_metrics *mx, lmf_trainer *t, const lmf_tokenizer *tok,
                                int done) {
    const lmf_train_opts *o = lmf_trainer_opts(t);
    struct lmf_gpt *m;
    int made;
    LMF_TRY(lmf_trainer_whole_model(t, &m, &made));
    char *text = NULL;
    lmf_status s = LMF_OK;
    if (m && mx) {
        s = lmf_train_sample(m, tok, o->sample_prompt, LMF_TRAIN_SAMPLE_TOKENS,
                             o->seed + (uint64_t)done, &text);
        if (s == LMF_OK) s = lmf_metrics_sample(mx, done, o->sample_prompt, text);
    }
    if (made) lmf_gpt_free(m);
    free(text);
    return s;
}

static void note(const lmf_train_callbacks *cb, const char *what, const char *why) {
    if (!cb->on_note) return;
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s", what, why);
    cb->on_note(cb->ctx, msg);
}

/* the steps; *end and the status say how they ended */
static lmf_status loop(lmf_trainer *t, const lmf_train_callbacks *cb, lmf_metrics *mx,
                       const lmf_tokenizer *tok, lmf_run_result *res) {
    const lmf_train_opts *o = lmf_trainer_opts(t);
    int start = lmf_trainer_next_step(t);
    double t_sum = 0;
    int t_n = 0;
    for (int step; (step = lmf_trainer_next_step(t)) < o->steps;) {
        lmf_step_stats st;
        /* every profile_every steps (never the first, which warms up) is timed by phase */
        int prof = o->profile_every > 0 && (step + 1) % o->profile_every == 0;
        if (prof) {
            lmf_gpt_profile(lmf_trainer_model(t), 1);
            lmf_gpt_profile_reset(lmf_trainer_model(t));
        }
        lmf_status s = lmf_trainer_step(t, &st);
        if (prof) lmf_gpt_profile(lmf_trainer_model(t), 0);
        if (s == LMF_ERR_INTERRUPTED) { /* a stop during the step: keep the last completed one */
            LMF_TRY(lmf_trainer_save(t));
            LMF_TRY(lmf_trainer_wait_save(t));
            res->end = LMF_RUN_STOPPED;
            res->stop_value = lmf_trainer_stop_value(t);
            res->stop_requested_here = cb->stop_requested && cb->stop_requested(cb->ctx) != 0;
            return LMF_OK;
        }
        LMF_TRY(s);
        int done = lmf_trainer_next_step(t); /* step + 1, or less after a rollback */
        int last = done == o->steps, rolled = st.rolled_back_to >= 0;
        res->steps_done = done;
        if (step > start) { /* the first step after the start warms up: not in the mean */
            t_sum += st.seconds;
            t_n++;
        }
        double per = t_n ? t_sum / t_n : st.seconds;
        if (cb->on_step) cb->on_step(cb->ctx, &st, done, o->steps, per * (o->steps - done));
        record_step(mx, &st);
        if (prof && !st.skipped) record_phases(mx, t, &st);
        if (prof) record_memory(mx, t, st.step);
        if (!rolled && o->sample_every > 0 && done % o->sample_every == 0)
            LMF_TRY(record_sample(mx, t, tok, done));
        if (!rolled && o->val_data && o->eval_every > 0 && (done % o->eval_every == 0 || last)) {
            float vl;
            LMF_TRY(lmf_trainer_eval(t, &vl));
            if (mx) lmf_metrics_eval(mx, done, vl);
            if (cb->on_eval) cb->on_eval(cb->ctx, done, vl);
        }
        /* every rank stops after the same step; decided once, together (a signal may arrive
         * at any time on any rank) */
        int here = cb->stop_requested ? cb->stop_requested(cb->ctx) : 0;
        int after = o->stop_after > 0 && done == o->stop_after && !last;
        int stop = lmf_trainer_any(t, here ? here : after);
        int save = (!rolled && (last || (o->save_every > 0 && done % o->save_every == 0))) || stop;
        if (save) LMF_TRY(lmf_trainer_save(t));
        /* the final checkpoint (and a pre-emption's) must be complete before the exit */
        if (last || stop) LMF_TRY(lmf_trainer_wait_save(t));
        if (stop) {
            res->end = after && !here ? LMF_RUN_STOPPED_AFTER : LMF_RUN_STOPPED;
            res->stop_requested_here = here != 0;
            res->stop_value = stop;
            return LMF_OK;
        }
    }
    return LMF_OK;
}

lmf_status lmf_trainer_run(lmf_trainer *t, const lmf_train_callbacks *callbacks,
                           lmf_run_result *res) {
    static const lmf_train_callbacks none = {0};
    const lmf_train_callbacks *cb = callbacks ? callbacks : &none;
    const lmf_train_opts *o = lmf_trainer_opts(t);
    int rank = lmf_trainer_rank(t), start = lmf_trainer_next_step(t);
    memset(res, 0, sizeof *res);
    res->end = LMF_RUN_COMPLETED;
    res->steps_done = start;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
    lmf_metrics *mx = NULL;
    /* the samples' tokenizer: the run directory's (made for the default data), if any */
    lmf_tokenizer *tok = NULL;
    if (rank == 0 && o->sample_every > 0 && lmf_model_find_tokenizer(o->out_dir, &tok) != LMF_OK)
        tok = NULL;
    if (rank == 0 && o->sample_every > 0 && o->sample_prompt && o->sample_prompt[0] && !tok)
        return lmf_fail(LMF_ERR_ARG, "the sample prompt needs the run's tokenizer, and %s has "
                        "none (the data was not made from text here): leave the prompt out (the "
                        "samples are then token ids)", o->out_dir);
    /* a resumed run keeps the lines of the steps before its checkpoint */
    if (rank == 0) {
        lmf_status os = lmf_mkdir_p(o->out_dir);
        if (os == LMF_OK)
            os = lmf_metrics_open(path, o->resume_dir ? start : -1, lmf_trainer_run_id(t), &mx);
        if (os != LMF_OK) {
            lmf_tok_free(tok);
            return os;
        }
        /* what the run is set to do, known to a reader before the first checkpoint */
        lmf_status rs = lmf_run_dir_record_start(o->out_dir, t);
        if (rs != LMF_OK) {
            lmf_metrics_close(mx);
            lmf_tok_free(tok);
            return rs;
        }
    }
    lmf_trainer_set_stop_check(t, cb->stop_requested, cb->ctx);
    lmf_status s = loop(t, cb, mx, tok, res);
    lmf_tok_free(tok);
    lmf_trainer_set_stop_check(t, NULL, NULL);
    /* a new run of no steps still ends with its checkpoint (of the initial weights), which a
     * resume with more --steps continues */
    if (s == LMF_OK && start == o->steps && !o->resume_dir && (s = lmf_trainer_save(t)) == LMF_OK)
        s = lmf_trainer_wait_save(t);
    lmf_metrics_close(mx);
    if (s == LMF_OK && (s = lmf_trainer_materialize(t)) != LMF_OK)
        s = lmf_fail_context(s, "gathering weights: ");
    if (s != LMF_OK || rank != 0) return s;
    if ((s = lmf_trainer_export(t)) != LMF_OK) return lmf_fail_context(s, "export: ");
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/loss.svg", o->out_dir);
    if (lmf_plot_losses(path, svg, "lmforge training loss") != LMF_OK)
        note(cb, "no chart", lmf_last_error());
    return LMF_OK;
}
