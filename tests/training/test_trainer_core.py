"""The trainer's machinery: exact resume after SIGKILL, AMP, data parallelism, guards, EMA."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from sisgen.training import TrainConfig, Trainer
from sisgen.training.ema import recalibrate_batchnorm
from sisgen.training.sampler import ResumableSampler

REPO = Path(__file__).resolve().parents[2]


def _cfg(out_dir, **kw) -> TrainConfig:
    args = dict(
        model="spade", dataset="toycity",
        model_args={"ngf": 4, "spade_hidden": 8, "z_dim": 8},
        height=32, width=64, source={"kind": "toycity", "length": 6}, batch_size=2,
        steps=7, discriminator={"ndf": 8, "n_layers": 2, "num_d": 1}, log_every=1,
        sample_every=0, checkpoint_every=2, out_dir=str(out_dir), seed=3, ema_decay=0.9,
        threads=1, deterministic=True, validate=False,
    )
    args.update(kw)
    return TrainConfig(**args)


def _run_script(cfg: TrainConfig) -> str:
    return (
        "import sys\n"
        "from sisgen.training import TrainConfig, train\n"
        f"cfg = TrainConfig(**{cfg.to_dict()!r})\n"
        "train(cfg, resume='--resume' in sys.argv, progress=False)\n"
    )


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    return {**{f"G.{k}": v for k, v in ckpt["G"].items()},
            **{f"D.{k}": v for k, v in ckpt["d_nets"].items()},
            **{f"E.{k}": v for k, v in ckpt["G_ema"].items()}}


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")


def test_sigkill_and_resume_equals_uninterrupted(tmp_path):
    steps = 9
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref = _cfg(ref_dir, steps=steps)
    Trainer(ref, progress=False).fit()

    script = tmp_path / "run.py"
    script.write_text(_run_script(_cfg(cut_dir, steps=steps)))
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(), cwd=tmp_path)
    log = cut_dir / "log.jsonl"
    deadline = time.time() + 120
    # kill it once a checkpoint exists and it has run past it (mid-epoch, not at a boundary)
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and any(json.loads(x)["step"] >= 5 for x in
                                 log.read_text().splitlines() if x.strip().endswith("}")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed (machine too fast)")
    assert proc.returncode == -signal.SIGKILL
    ck = torch.load(cut_dir / "checkpoint.pt", weights_only=True)
    assert 2 <= ck["step"] < steps
    done = subprocess.run([sys.executable, str(script), "--resume"], env=_env(), cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0
    a, b = _weights(ref_dir), _weights(cut_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log reads as one run: every step once
    steps_logged = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps_logged == list(range(1, steps + 1))


@pytest.mark.parametrize("cut", [4, 3])  # mid-epoch, and at an epoch's end (3 steps each)
def test_resume_keeps_the_global_torch_stream(tmp_path, cut):
    # OASIS's LabelMix draws from torch's global generator, which the DataLoader's iterator
    # also draws from: a resumed run must continue it as the uninterrupted one does
    kw = dict(model="oasis", model_args={"ngf": 4, "z_dim": 4, "spade_hidden": 8,
                                         "num_res_blocks": 3},
              discriminator={"ndf": 4})
    Trainer(_cfg(tmp_path / "ref", steps=5, **kw), progress=False).fit()
    Trainer(_cfg(tmp_path / "cut", steps=cut, **kw), progress=False).fit()
    t = Trainer(_cfg(tmp_path / "cut", steps=5, **kw), progress=False)
    t.load_checkpoint()
    t.fit()
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _g_loss_after_one_step(amp: str) -> tuple[float, float]:
    torch.manual_seed(0)
    cfg = _cfg("/tmp/unused-amp", amp=amp, ema_decay=0.0, lr_g=2e-3,
               losses={"gan": 0.0, "fm": 0.0, "l1": 1.0})
    t = Trainer(cfg, progress=False)
    batch = t._to_device(next(iter(t._loader())))
    noise = t._noise(2)

    def loss() -> float:
        with torch.no_grad(), t._autocast():
            return float(t.objective.generator_loss(t.G, batch, noise)[0].float())

    before = loss()
    for _ in range(3):
        t.opt_g.zero_grad(set_to_none=True)
        with t._autocast():
            g_loss = t.objective.generator_loss(t.G, batch, noise)[0]
        assert t._apply(g_loss, t.opt_g, t.scaler_g, t.g_params)
    return before, loss()


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_amp_steps_reduce_the_loss_like_fp32(amp):
    before, after = _g_loss_after_one_step(amp)
    assert after < before
    if amp != "none":
        ref_before, ref_after = _g_loss_after_one_step("none")
        assert before == pytest.approx(ref_before, rel=0.05)
        # a comparable decrease to fp32's
        assert (before - after) == pytest.approx(ref_before - ref_after, rel=0.5)


def test_fp16_uses_a_loss_scaler(tmp_path):
    t = Trainer(_cfg(tmp_path, amp="fp16"), progress=False)
    assert t.scaler_g.is_enabled() and t.scaler_d.is_enabled()
    t2 = Trainer(_cfg(tmp_path, amp="bf16"), progress=False)
    assert not t2.scaler_g.is_enabled()


def test_non_finite_steps_are_skipped_then_abort(tmp_path):
    t = Trainer(_cfg(tmp_path, max_bad_steps=2, ema_decay=0.0), progress=False)
    orig = t.objective.generator_loss

    def poisoned(G, batch, noise):
        loss, terms, fake = orig(G, batch, noise)
        return loss * float("nan"), terms, fake

    t.objective.generator_loss = poisoned
    before = {k: v.clone() for k, v in t.G.named_parameters()}
    batch = next(iter(t._loader()))
    t.train_step(batch)
    assert t.skipped == 1
    for k, v in t.G.named_parameters():  # no update applied (buffers such as SN's u move)
        assert torch.equal(v, before[k]), k
    with pytest.raises(RuntimeError, match="diverged"):
        t.train_step(batch)


def test_grad_clip_bounds_the_update(tmp_path):
    t = Trainer(_cfg(tmp_path, grad_clip=1e-3, ema_decay=0.0), progress=False)
    batch = t._to_device(next(iter(t._loader())))
    with t._autocast():
        loss = t.objective.generator_loss(t.G, batch, t._noise(2))[0]
    t.opt_g.zero_grad()
    loss.backward()
    raw = torch.nn.utils.clip_grad_norm_(t.g_params, float("inf"))
    t.opt_g.zero_grad()
    assert t._apply(t.objective.generator_loss(t.G, batch, t._noise(2))[0], t.opt_g, t.scaler_g,
                    t.g_params)
    clipped = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in t.g_params if p.grad is not None))
    assert raw > 1e-3 and clipped == pytest.approx(1e-3, rel=1e-3)


def test_linear_lr_decay(tmp_path):
    t = Trainer(_cfg(tmp_path, steps=10, lr_decay_start=0.5), progress=False)
    assert [t._lr_factor(s) for s in (0, 4, 5, 6, 10)] == pytest.approx([1, 1, 1, 0.8, 0.0])


def test_epochs_set_the_step_count(tmp_path):
    t = Trainer(_cfg(tmp_path, steps=None, epochs=2), progress=False)
    assert t.steps_per_epoch == 3 and t.total_steps == 6


def test_batchnorm_recalibration_gives_the_batch_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    batches = [torch.randn(2, 3, 5, 5) * (i + 1) for i in range(3)]
    with torch.no_grad():
        acts = torch.cat([net[0](b) for b in batches])
    n = recalibrate_batchnorm(net, batches, lambda m, b: m(b))
    assert n == 3 and not net.training
    # the cumulative average of per-batch means (equal batch sizes) = the overall mean
    assert torch.allclose(net[1].running_mean, acts.mean((0, 2, 3)), atol=1e-5)
    assert net[1].momentum == 0.1


def test_ema_generator_is_recalibrated_on_a_copy(tmp_path):
    t = Trainer(_cfg(tmp_path, model_args={"ngf": 4, "spade_hidden": 8, "z_dim": 8,
                                           "norm": "batch"}, ema_bn_batches=2, steps=2),
                progress=False)
    t.fit()
    ema_stats = {k: v.clone() for k, v in t.G_ema.state_dict().items() if "running" in k}
    final = t.final_generator()
    assert final is not t.G_ema
    assert any(not torch.equal(final.state_dict()[k], v) for k, v in ema_stats.items())
    for k, v in ema_stats.items():
        assert torch.equal(t.G_ema.state_dict()[k], v)


def test_channels_last_and_tensorboard_optional(tmp_path):
    t = Trainer(_cfg(tmp_path, channels_last=True, steps=2, tensorboard=True), progress=False)
    t.fit()
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_sampler_resumes_mid_epoch_and_splits_ranks():
    s = ResumableSampler(10, seed=1)
    full = s.order(3)
    s.set_position(3, 4)
    assert list(s) == full[4:]
    assert sorted(full) == list(range(10))
    assert s.order(3) != s.order(4)
    r0, r1 = ResumableSampler(5, 1, 0, 2), ResumableSampler(5, 1, 1, 2)
    assert len(r0.order(0)) == len(r1.order(0)) == 3
    assert set(r0.order(0)) | set(r1.order(0)) == set(range(5))


def test_torchrun_two_ranks_finish_with_identical_weights(tmp_path):
    run = tmp_path / "ddp"
    cfg = _cfg(run, steps=3, batch_size=4, model_args={"ngf": 4, "spade_hidden": 8,
                                                       "z_dim": 8, "norm": "batch"})
    script = tmp_path / "ddp.py"
    script.write_text(
        "import os, torch\n"
        "from sisgen.training import TrainConfig, Trainer\n"
        "from sisgen.training import distributed as d\n"
        f"cfg = TrainConfig(**{cfg.to_dict()!r})\n"
        "t = Trainer(cfg, progress=False)\n"
        "t.fit()\n"
        "torch.save({'G': t.G.state_dict(), 'D': t.objective.d_nets.state_dict()},\n"
        f"           {str(tmp_path)!r} + f'/rank{{t.dist.rank}}.pt')\n"
        "d.teardown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", str(script)],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for part in ("G", "D"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    # and training moved them
    assert (run / "model" / "model.safetensors").is_file()
    lines = (run / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]  # rank 0 logs alone


def test_periodic_evaluation_writes_metrics(tmp_path):
    cfg = _cfg(tmp_path, steps=2, eval_every=2, eval={"metrics": ["icv"], "limit": 3})
    Trainer(cfg, progress=False).fit()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]
    assert rows[0]["images"] == 3
    assert any(k.startswith("icv") and isinstance(v, float) for k, v in rows[0].items())


def test_instance_ids_are_compacted_for_models_that_index_them():
    from sisgen.training.objective import compact_ids

    inst = torch.tensor([[[0, 26001, 26001], [33000, 0, 24005]], [[24005, 7, 0], [0, 0, 0]]])
    out = compact_ids(inst)
    assert out.tolist() == [[[0, 3, 3], [4, 0, 2]], [[2, 1, 0], [0, 0, 0]]]
    assert compact_ids(torch.tensor([[5, 5], [9, 9]])).tolist() == [[1, 1], [2, 2]]


# ------------------------------------------------------------------------------ init_from
def test_init_from_starts_the_local_enhancer_from_the_global_run(tmp_path):
    from safetensors.torch import load_file

    from sisgen.errors import SisgenInputError
    from sisgen.models import build_model
    from sisgen.training.trainer import init_generator

    small = dict(dataset="toycity", height=32, width=64, n_downsample_global=2,
                 n_blocks_global=1)
    torch.manual_seed(0)
    build_model("pix2pixhd", ngf=8, **small).save(tmp_path / "global")
    local = build_model("pix2pixhd_local", ngf=4, n_blocks_local=1, **small)
    copied, total = init_generator(local, tmp_path / "global")
    src = load_file(str(tmp_path / "global" / "model.safetensors"))
    own = local.state_dict()
    fitting = [k for k in own if k in src and src[k].shape == own[k].shape]
    # the global generator minus its output head is the local model's `model` trunk
    assert copied == len(fitting) > 0 and copied < total
    assert all(k.startswith("model.") for k in fitting)
    for k in fitting:
        assert torch.equal(local.state_dict()[k], src[k])

    # through the config: the trainer's generator starts from those weights
    cfg = _cfg(tmp_path / "run", model="spade", steps=1, ema_decay=0.0)
    model_dir = Trainer(cfg, progress=False).fit()
    trainer = Trainer(_cfg(tmp_path / "run2", steps=1, init_from=str(model_dir)),
                      progress=False)
    want = load_file(str(model_dir / "model.safetensors"))
    assert all(torch.equal(v, want[k]) for k, v in trainer.G.state_dict().items())

    with pytest.raises(SisgenInputError, match="no tensor fits"):
        init_generator(build_model("oasis", dataset="tiny"), tmp_path / "global")
    with pytest.raises(SisgenInputError, match="model.safetensors"):
        init_generator(local, tmp_path / "missing")


def test_train_only_trains_the_local_enhancer_alone_first(tmp_path):
    from sisgen.errors import SisgenInputError

    def run(name, train_only):
        cfg = _cfg(tmp_path / name, model="pix2pixhd_local", steps=2, ema_decay=0.0,
                   model_args={"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 1,
                               "n_blocks_local": 1},
                   discriminator={"ndf": 4, "n_layers": 1, "num_d": 1}, train_only=train_only)
        trainer = Trainer(cfg, progress=False)
        before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        trainer.fit()
        return {k: not torch.equal(before[k], v) for k, v in trainer.G.state_dict().items()
                if k.endswith("weight")}

    changed = run("warm", {"params": ["model1_"], "epochs": 1})
    assert any(changed[k] for k in changed if k.startswith("model1_"))
    assert not any(changed[k] for k in changed if k.startswith("model."))
    # after the warm-up (or without one) the whole generator trains
    changed = run("all", {"params": ["model1_"], "epochs": 0})
    assert any(changed[k] for k in changed if k.startswith("model."))
    with pytest.raises(SisgenInputError, match="no generator parameter"):
        run("bad", {"params": ["nope."], "epochs": 1})
