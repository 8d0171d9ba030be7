"""Port of upstream ``main.py``: SLBO's stage loop (Luo et al., 2019, Algorithm 2 / §6).

    python -m slbo.main -c configs/algos/slbo.yml configs/envs/hopper.yml -s log_dir=runs/hopper seed=1

For each of ``slbo.n_stages`` (100) stages:

1. evaluate the policy in the real env (4 envs, ``rollout.n_test_samples``) and in the model;
2. collect ``rollout.n_train_samples`` (10k) real steps with policy + OU noise (θ 0.15, σ 0.3)
   into the train set (and as many into the dev set, as upstream);
3. update the state / action / state-difference normalisers with the new samples;
4. entropy coefficient -> 0 from stage 50;
5. ``slbo.n_iters`` (20) times: ``slbo.n_model_iters`` (100) model updates on multi-step
   batches, then ``slbo.n_policy_iters`` (40) TRPO updates, each on ``plan.n_trpo_samples``
   (4000) virtual samples from ``plan.n_envs`` (8) model rollouts of ``plan.max_steps`` (500)
   steps started from real resets.

Port additions (PORTING.md): each run lives in ``log_dir`` with ``config.yml`` (resolved
flags incl. the git commit), ``diff.patch``, ``log.txt``, ``progress.csv`` (evaluation
returns per stage), TensorBoard events under ``tb/``, ``ckpt/latest.pt`` after every stage
(a killed run started again with the same ``log_dir`` resumes after its last finished
stage) and upstream's ``stage-T.pt`` / ``final.pt`` every ``ckpt.n_save_stages`` stages.
"""
from __future__ import annotations

import csv
import logging
import os
import pickle
import sys
import time
from collections import deque

import numpy as np
import torch
from torch import nn

from slbo.algos.TRPO import TRPO
from slbo.dynamics_model import DynamicsModel
from slbo.envs.virtual_env import VirtualEnv
from slbo.loss.criteria import L1Loss, L2Loss, MSELoss
from slbo.loss.multi_step_loss import MultiStepLoss
from slbo.partial_envs import make_env
from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
from slbo.utils.average_meter import AverageMeter
from slbo.utils.dataset import Dataset, gen_dtype
from slbo.utils.flags import FLAGS, parse_flags
from slbo.utils.normalizer import Normalizers
from slbo.utils.OU_noise import OUNoise
from slbo.utils.runner import Runner
from slbo.v_function.mlp_v_function import MLPVFunction

logger = logging.getLogger("slbo")

# One row per evaluation at the start of stage T (the policy after T stages; the last row,
# stage = n_stages, is the final policy). n_real_samples: real training samples collected so
# far (dev-set samples not counted). prev_*_time_s: wall-clock of the stage T-1 that produced
# this policy -- all of it, its model-update loops, its TRPO loops.
CSV_FIELDS = ['stage', 'n_real_samples', 'real_return_mean', 'real_return_std', 'real_n_episodes',
              'virt_return_mean', 'virt_return_std', 'virt_n_episodes', 'prev_stage_time_s',
              'prev_model_time_s', 'prev_policy_time_s', 'wall_time_s']


def evaluate(settings, tag):
    results = {}
    for runner, policy, name in settings:
        runner.reset()
        _, ep_infos = runner.run(policy, FLAGS.rollout.n_test_samples)
        returns = np.array([ep_info['return'] for ep_info in ep_infos])
        mean = float(np.mean(returns)) if len(returns) else float('nan')
        std = float(np.std(returns)) if len(returns) else float('nan')
        logger.info('Tag = %s, Reward on %s (%d episodes): mean = %.6f, std = %.6f', tag, name,
                    len(returns), mean, std)
        results[name] = (mean, std, len(returns))
    return results


def add_multi_step(src: Dataset, dst: Dataset):
    n_envs = 1
    dst.extend(src[:-n_envs])

    ending = src[-n_envs:].copy()
    ending.timeout = True
    dst.extend(ending)


def make_real_runner(n_envs):
    from slbo.envs.batched_env import BatchedEnv
    batched_env = BatchedEnv([make_env(FLAGS.env.id) for _ in range(n_envs)])
    return Runner(batched_env, rescale_action=True, **FLAGS.runner.as_dict())


# --------------------------------------------------------------------------------------
# port additions: run directory, CSV, TensorBoard, checkpoint/resume
# --------------------------------------------------------------------------------------
def setup_logging(log_dir=None, level=logging.INFO):
    logger.setLevel(level)
    logger.propagate = False
    fmt = logging.Formatter('%(asctime)s %(levelname)s %(message)s', '%H:%M:%S')
    for h in list(logger.handlers):
        if getattr(h, '_slbo', False):
            logger.removeHandler(h)
            h.close()
    handlers = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        handlers.append(logging.FileHandler(os.path.join(log_dir, 'log.txt')))
    for h in handlers:
        h._slbo = True
        h.setFormatter(fmt)
        logger.addHandler(h)


class ProgressCSV(object):
    def __init__(self, path, keep_until_stage=None):
        self.path = path
        rows = []
        if keep_until_stage is not None and os.path.exists(path):
            with open(path) as f:
                rows = [r for r in csv.DictReader(f) if int(r['stage']) <= keep_until_stage]
        with open(path, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def write(self, row):
        with open(self.path, 'a', newline='') as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow({k: row.get(k, '') for k in CSV_FIELDS})


def _summary_writer(log_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(log_dir, 'tb'))
    except Exception as e:  # pragma: no cover - tensorboard missing
        logger.warning('TensorBoard unavailable (%s); no event files', e)
        return None


def _atomic_save(obj, path):
    tmp = path + '.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    FLAGS.set_seed()
    FLAGS.freeze()
    log_dir = FLAGS.log_dir
    setup_logging(log_dir)
    logger.info('commit = %s, log_dir = %s', FLAGS.commit, log_dir)

    env = make_env(FLAGS.env.id)
    dim_state = int(np.prod(env.observation_space.shape))
    dim_action = int(np.prod(env.action_space.shape))

    env.verify()

    normalizers = Normalizers(dim_action=dim_action, dim_state=dim_state)

    dtype = gen_dtype(env, 'state action next_state reward done timeout')
    train_set = Dataset(dtype, FLAGS.rollout.max_buf_size)
    dev_set = Dataset(dtype, FLAGS.rollout.max_buf_size)

    policy = GaussianMLPPolicy(dim_state, dim_action, normalizer=normalizers.state, **FLAGS.policy.as_dict())
    # batched noises
    noise = OUNoise(env.action_space, theta=FLAGS.OUNoise.theta, sigma=FLAGS.OUNoise.sigma, shape=(1, dim_action))
    vfn = MLPVFunction(dim_state, [64, 64], normalizers.state)
    model = DynamicsModel(dim_state, dim_action, normalizers, FLAGS.model.hidden_sizes)
    for module in (normalizers, policy, vfn, model):  # port: FLAGS.device (the optimisers are built after)
        module.to(FLAGS.device)

    virt_env = VirtualEnv(model, make_env(FLAGS.env.id), FLAGS.plan.n_envs, opt_model=FLAGS.slbo.opt_model)
    virt_runner = Runner(virt_env, **{**FLAGS.runner.as_dict(), 'max_steps': FLAGS.plan.max_steps})

    criterion_map = {
        'L1': L1Loss(),
        'L2': L2Loss(),
        'MSE': MSELoss(),
    }
    criterion = criterion_map[FLAGS.model.loss]
    loss_mod = MultiStepLoss(model, normalizers, dim_state, dim_action, criterion, FLAGS.model.multi_step)
    loss_mod.build_backward(FLAGS.model.lr, FLAGS.model.weight_decay)
    algo = TRPO(vfn=vfn, policy=policy, dim_state=dim_state, dim_action=dim_action, **FLAGS.TRPO.as_dict())

    runners = {
        'test': make_real_runner(4),
        'collect': make_real_runner(1),
        'dev': make_real_runner(1),
        'train': make_real_runner(FLAGS.plan.n_envs) if FLAGS.algorithm == 'MF' else virt_runner,
    }
    settings = [(runners['test'], policy, 'Real Env'), (runners['train'], policy, 'Virt Env')]

    saver = nn.ModuleDict({'policy': policy, 'model': model, 'vfn': vfn, 'normalizers': normalizers})
    logger.debug('%s', saver)

    if FLAGS.ckpt.model_load:
        saver.load_state_dict(torch.load(FLAGS.ckpt.model_load))
        logger.warning('Load model from %s', FLAGS.ckpt.model_load)

    if FLAGS.ckpt.buf_load:
        n_samples = 0
        for i in range(FLAGS.ckpt.buf_load_index):
            with open(f'{FLAGS.ckpt.buf_load}/stage-{i}.inc-buf.pkl', 'rb') as f:
                data = pickle.load(f)
            add_multi_step(data, train_set)
            n_samples += len(data)
        logger.warning('Loading %d samples from %s', n_samples, FLAGS.ckpt.buf_load)

    max_ent_coef = FLAGS.TRPO.ent_coef

    # -- port: resume ------------------------------------------------------------------
    ckpt_dir = os.path.join(log_dir, 'ckpt')
    os.makedirs(ckpt_dir, exist_ok=True)
    latest = os.path.join(ckpt_dir, 'latest.pt')
    start_stage, n_real_samples, wall_offset = 0, 0, 0.
    if FLAGS.ckpt.resume and os.path.exists(latest):
        state = torch.load(latest, weights_only=False)
        saver.load_state_dict(state['saver'])
        loss_mod.optimizer.load_state_dict(state['model_optimizer'])
        algo.vf_optimizer.load_state_dict(state['vf_optimizer'])
        train_set.load_state_dict(state['train_set'])
        dev_set.load_state_dict(state['dev_set'])
        noise.load_state_dict(state['noise'])
        max_ent_coef = state['max_ent_coef']
        np.random.set_state(state['np_random'])
        torch.set_rng_state(state['torch_random'])
        start_stage, n_real_samples, wall_offset = state['stage'] + 1, state['n_real_samples'], state['wall_time_s']
        logger.warning('Resuming from %s: stage %d done, starting stage %d', latest, state['stage'], start_stage)
    progress = ProgressCSV(os.path.join(log_dir, 'progress.csv'), keep_until_stage=start_stage - 1)
    writer = _summary_writer(log_dir)
    t_start = time.time() - wall_offset

    def log_eval(T, results, times):
        stage_time, model_time, policy_time = times
        real, virt = results['Real Env'], results['Virt Env']
        progress.write({'stage': T, 'n_real_samples': n_real_samples,
                        'real_return_mean': real[0], 'real_return_std': real[1], 'real_n_episodes': real[2],
                        'virt_return_mean': virt[0], 'virt_return_std': virt[1], 'virt_n_episodes': virt[2],
                        'prev_stage_time_s': stage_time, 'prev_model_time_s': model_time,
                        'prev_policy_time_s': policy_time, 'wall_time_s': time.time() - t_start})
        if writer is not None:
            writer.add_scalar('eval/real_return', real[0], T)
            writer.add_scalar('eval/virt_return', virt[0], T)
            writer.add_scalar('eval/real_return_vs_samples', real[0], n_real_samples)
            writer.flush()

    times = (float('nan'),) * 3
    for T in range(start_stage, FLAGS.slbo.n_stages):
        t_stage = time.time()
        logger.info('------ Starting Stage %d --------', T)
        log_eval(T, evaluate(settings, 'episode'), times)
        model_time = policy_time = 0.

        if not FLAGS.use_prev:
            train_set.clear()
            dev_set.clear()

        # collect data
        recent_train_set, ep_infos = runners['collect'].run(noise.make(policy), FLAGS.rollout.n_train_samples)
        add_multi_step(recent_train_set, train_set)
        add_multi_step(
            runners['dev'].run(noise.make(policy), FLAGS.rollout.n_dev_samples)[0],
            dev_set,
        )
        n_real_samples += FLAGS.rollout.n_train_samples

        returns = np.array([ep_info['return'] for ep_info in ep_infos])
        if len(returns) > 0:
            logger.info("episode: %s", np.mean(returns))

        if T == 0:  # check
            samples = train_set.sample_multi_step(100, 1, FLAGS.model.multi_step)
            for i in range(FLAGS.model.multi_step - 1):
                masks = 1 - (samples.done[i] | samples.timeout[i])[..., np.newaxis]
                assert np.allclose(samples.state[i + 1] * masks, samples.next_state[i] * masks)

        if FLAGS.rollout.normalizer == 'policy' or FLAGS.rollout.normalizer == 'uniform' and T == 0:
            normalizers.state.update(recent_train_set.state)
            normalizers.action.update(recent_train_set.action)
            normalizers.diff.update(recent_train_set.next_state - recent_train_set.state)

        if T == 50:
            max_ent_coef = 0.

        for i in range(FLAGS.slbo.n_iters):
            if i % FLAGS.slbo.n_evaluate_iters == 0 and i != 0:
                evaluate(settings, 'iteration')

            t_model = time.time()  # port: timing
            losses = deque(maxlen=FLAGS.slbo.n_model_iters)
            grad_norm_meter = AverageMeter()
            n_model_iters = FLAGS.slbo.n_model_iters
            for _ in range(n_model_iters):
                samples = train_set.sample_multi_step(FLAGS.model.train_batch_size, 1, FLAGS.model.multi_step)
                train_loss, grad_norm = loss_mod.train_step(
                    samples.state, samples.next_state, samples.action, ~samples.done & ~samples.timeout)
                losses.append(train_loss.mean())
                grad_norm_meter.update(grad_norm)

            if i % FLAGS.model.validation_freq == 0:
                samples = train_set.sample_multi_step(
                    FLAGS.model.train_batch_size, 1, FLAGS.model.multi_step)
                loss = loss_mod.get_loss(
                    samples.state, samples.next_state, samples.action, ~samples.done & ~samples.timeout)
                loss = loss.mean()
                if np.isnan(loss) or np.isnan(np.mean(losses)):
                    logger.info('nan! %s %s', np.isnan(loss), np.isnan(np.mean(losses)))
                logger.info('# Iter %3d: Loss = [train = %.3f, dev = %.3f], after %d steps, grad_norm = %.6f',
                            i, np.mean(losses), loss, n_model_iters, grad_norm_meter.get())
                if writer is not None:
                    step = T * FLAGS.slbo.n_iters + i
                    writer.add_scalar('model/train_loss', float(np.mean(losses)), step)
                    writer.add_scalar('model/dev_loss', float(loss), step)
                    writer.add_scalar('model/grad_norm', grad_norm_meter.get(), step)

            t_policy = time.time()  # port: timing
            model_time += t_policy - t_model
            trpo_returns, vf_losses = [], []
            for n_updates in range(FLAGS.slbo.n_policy_iters):
                if FLAGS.algorithm != 'MF' and FLAGS.slbo.start == 'buffer':
                    runners['train'].set_state(train_set.sample(FLAGS.plan.n_envs).state)
                else:
                    runners['train'].reset()

                data, ep_infos = runners['train'].run(policy, FLAGS.plan.n_trpo_samples)
                advantages, values = runners['train'].compute_advantage(vfn, data)
                out = algo.train(max_ent_coef, data, advantages, values)
                if out is None:  # port: upstream would fail to unpack (zero gradient)
                    continue
                dist_mean, dist_std, vf_loss = out
                returns = [info['return'] for info in ep_infos]
                trpo_returns.extend(returns)
                vf_losses.append(vf_loss)
                logger.debug('[TRPO] # %d: n_episodes = %d, returns: {mean = %.0f, std = %.0f}, '
                             'dist std = %.10f, dist mean = %.10f, vf_loss = %.3f',
                             n_updates, len(returns), np.mean(returns), np.std(returns) / np.sqrt(len(returns)),
                             dist_std, dist_mean, vf_loss)
            if vf_losses:
                logger.info('[TRPO] iter %d: %d updates, virtual return mean = %.1f, vf_loss = %.3f',
                            i, len(vf_losses), np.mean(trpo_returns) if trpo_returns else float('nan'),
                            np.mean(vf_losses))
                if writer is not None:
                    step = T * FLAGS.slbo.n_iters + i
                    writer.add_scalar('trpo/virtual_return', float(np.mean(trpo_returns)), step)
                    writer.add_scalar('trpo/vf_loss', float(np.mean(vf_losses)), step)
            policy_time += time.time() - t_policy

        if T % FLAGS.ckpt.n_save_stages == 0:
            torch.save(saver.state_dict(), f'{log_dir}/stage-{T}.pt')
            torch.save(saver.state_dict(), f'{log_dir}/final.pt')
        if FLAGS.ckpt.n_save_stages == 1:
            with open(f'{log_dir}/stage-{T}.inc-buf.pkl', 'wb') as f:
                pickle.dump(recent_train_set, f)

        stage_time = time.time() - t_stage
        logger.info('Stage %d took %.1f s', T, stage_time)
        _atomic_save({
            'stage': T, 'saver': saver.state_dict(),
            'model_optimizer': loss_mod.optimizer.state_dict(), 'vf_optimizer': algo.vf_optimizer.state_dict(),
            'train_set': train_set.state_dict(), 'dev_set': dev_set.state_dict(), 'noise': noise.state_dict(),
            'max_ent_coef': max_ent_coef, 'np_random': np.random.get_state(), 'torch_random': torch.get_rng_state(),
            'n_real_samples': n_real_samples, 'wall_time_s': time.time() - t_start,
        }, latest)
        times = (stage_time, model_time, policy_time)

    # port: evaluate the final policy too (upstream only evaluates at the start of a stage)
    if start_stage < FLAGS.slbo.n_stages or not os.path.exists(os.path.join(log_dir, 'done')):
        log_eval(FLAGS.slbo.n_stages, evaluate(settings, 'final'), times)
        torch.save(saver.state_dict(), f'{log_dir}/final.pt')
        open(os.path.join(log_dir, 'done'), 'w').close()
    if writer is not None:
        writer.close()
    return log_dir


def cli(argv=None):
    parse_flags(sys.argv[1:] if argv is None else argv)
    return main()


if __name__ == '__main__':
    cli()
