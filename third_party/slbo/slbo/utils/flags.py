"""Port of upstream ``slbo/utils/flags.py``: every default hyper-parameter, same names.

Defaults are upstream's *flag* defaults; ``configs/algos/slbo.yml`` then overrides
some of them exactly as upstream does (multi_step 2, batch 128, 40 policy iters,
entropy coefficient 0.005). Port additions are marked ``# port:``.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time

import yaml

from slbo.utils.config import BaseFLAGS, MetaFLAGS, expand, parse

logger = logging.getLogger("slbo")


class FLAGS(BaseFLAGS):
    _initialized = False

    use_prev = True
    seed = 100
    log_dir: str = None
    run_id: str = None
    algorithm = 'OLBO'  # possible options: OLBO, baseline, MF
    device = 'cpu'  # port: torch device of the networks (cpu | cuda | cuda:N); envs and buffers stay on the host

    class slbo(BaseFLAGS):
        n_iters = 20
        n_policy_iters = 10
        n_model_iters = 100
        n_stages = 100
        n_evaluate_iters = 10
        opt_model = False
        start = 'reset'  # possibly 'buffer'

    class plan(BaseFLAGS):
        max_steps = 500
        n_envs = None
        n_trpo_samples = 4000

        @classmethod
        def finalize(cls):
            if cls.n_envs is None:
                cls.n_envs = cls.n_trpo_samples // cls.max_steps
            assert cls.n_envs * cls.max_steps == cls.n_trpo_samples

    class env(BaseFLAGS):
        id = 'HalfCheetah-v5'  # port: upstream 'HalfCheetah-v2' (rllab); see PORTING.md

    class rollout(BaseFLAGS):
        normalizer = 'policy'
        max_buf_size = 200000
        n_train_samples = 10000
        n_dev_samples = 0
        n_test_samples = 10000

        @classmethod
        def finalize(cls):
            cls.n_dev_samples = cls.n_dev_samples or cls.n_train_samples

    class ckpt(BaseFLAGS):
        n_save_stages = 10
        model_load = None
        policy_load = None
        buf_load = None
        buf_load_index = 0
        base = 'runs/slbo'  # port: upstream '/tmp/mbrl/logs'
        warm_up = None
        resume = True  # port: resume a killed run from <log_dir>/ckpt/latest.pt

        @classmethod
        def finalize(cls):
            for key, value in cls.as_dict().items():
                if isinstance(value, str):
                    setattr(cls, key, expand(value))

    class OUNoise(BaseFLAGS):
        theta = 0.15
        sigma = 0.3

    class model(BaseFLAGS):
        hidden_sizes = [500, 500]
        loss = 'L2'  # possibly L1, L2, MSE, G
        G_coef = 0.5
        multi_step = 1
        lr = 1e-3
        weight_decay = 1e-5
        validation_freq = 1
        optimizer = 'Adam'
        train_batch_size = 256
        dev_batch_size = 1024

    class policy(BaseFLAGS):
        hidden_sizes = [32, 32]
        init_std = 1.

    class PPO(BaseFLAGS):
        n_minibatches = 32
        n_opt_epochs = 10
        ent_coef = 0.005
        lr = 3e-4
        clip_range = 0.2

    class TRPO(BaseFLAGS):
        cg_damping = 0.1
        n_cg_iters = 10
        max_kl = 0.01
        vf_lr = 1e-3
        n_vf_iters = 5
        ent_coef = 0.0

    class runner(BaseFLAGS):
        lambda_ = 0.95
        gamma = 0.99
        max_steps = 500

    @classmethod
    def set_seed(cls):
        if cls.seed == 0:  # auto seed
            cls.seed = int.from_bytes(os.urandom(3), 'little') + 1  # never use seed 0 for RNG, 0 is for `urandom`
        logger.warning("Setting random seed to %s", cls.seed)

        import random

        import numpy as np
        import torch
        np.random.seed(cls.seed)
        # upstream: tf.set_random_seed(np.random.randint(2**30)) -- kept so the numpy stream matches
        np.random.randint(2**30)
        torch.manual_seed(np.random.randint(2**30))
        random.seed(np.random.randint(2**30))
        np.random.randint(2**30)  # upstream: torch.cuda.manual_seed_all (CPU port)

    @classmethod
    def finalize(cls):
        log_dir = cls.log_dir
        if log_dir is None:
            run_id = cls.run_id
            if run_id is None:
                run_id = time.strftime('%Y-%m-%d_%H-%M-%S')

            log_dir = os.path.join(cls.ckpt.base, run_id)
        cls.log_dir = expand(log_dir)
        os.makedirs(cls.log_dir, exist_ok=True)

        # port: upstream ran `git add .` + `git checkout-index` into log_dir/src (mutating the
        # caller's index); we only record the commit and the uncommitted diff of this package.
        cls.commit = git_commit()
        with open(os.path.join(cls.log_dir, 'config.yml'), 'w') as f:
            yaml.safe_dump(cls.as_dict(), f, default_flow_style=False)
        with open(os.path.join(cls.log_dir, 'diff.patch'), 'w') as f:
            f.write(git_diff())
        logger.info("log_dir = %s", cls.log_dir)

        cls.set_frozen()


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args):
    try:
        return subprocess.check_output(['git', *args], cwd=_PKG_DIR, stderr=subprocess.DEVNULL).decode('utf-8')
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ''


def git_commit():
    return _git('rev-parse', 'HEAD').strip() or 'unknown'


def git_diff():
    return _git('--no-pager', 'diff', 'HEAD', '--', '.')


_DEFAULTS = FLAGS.snapshot()


def reset_flags():
    """Port addition: restore every flag to its default (unfrozen)."""
    MetaFLAGS.set_frozen(False)
    FLAGS.restore(_DEFAULTS)
    for k in ('commit',):
        if k in FLAGS.__dict__:
            delattr(FLAGS, k)


def parse_flags(argv=None):
    """Port of the import-time ``parse(FLAGS)``: reset, then apply ``-c``/``-s`` from ``argv``."""
    reset_flags()
    parse(FLAGS, argv)
    return FLAGS
