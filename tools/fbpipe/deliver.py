"""The last stages: TQT fine-tuning of the chosen configs and their integer deployment (DORY export, checks,
bit-exact verification, integer accuracy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np

import fb_deploy
import fb_search
from fb_schema import NetConfig, QuantizedNetwork, read_json, write_json
from fbpipe.run import Candidate, Run


def finetune(run: Run, data, todo: list[Candidate]) -> dict[str, dict]:
    """TQT fine-tuning of each selected and baseline config; writes the QuantizedNetwork artifact.

    Candidates that are one network (same precisions, same starting checkpoint), e.g. one knapsack pick on two
    targets, are fine-tuned once: fine-tuning is deterministic, so the later ones share the first one's result
    (``same_as``). The returned (and recorded) paths are relative to the run directory; open them with
    ``run.path``.
    """
    results: dict[str, dict] = {}
    tuned: dict[tuple[str, str], str] = {}  # (config sha256, checkpoint) -> the candidate fine-tuned for it
    for cand in todo:
        out_dir = run.out / "finetune" / cand.id
        marker = out_dir / "result.json"
        net = cand.load(run.cfg.allowed_bits)
        identity = (net.sha256(), str(cand.checkpoint))
        first = tuned.get(identity)

        def compute(cand=cand, net=net, out_dir=out_dir, marker=marker, first=first):
            if first is not None:
                info = {**results[first], "same_as": first}
                write_json(marker, info)
                click.echo(f"      {cand.id:<40} TQT acc {info['tqt_accuracy']:.2%} (the network of {first})")
                return info, [marker, run.path(info["artifact"]).parent]
            acc, artifact = fb_search.finetune(net, cand.checkpoint, data, steps=run.cfg.finetune_steps,
                                               seed=run.cfg.seed, out_dir=out_dir, ref_images=run.cfg.reference_images,
                                               recipe=run.cfg.recipe)  # fmt: skip
            folder = Path(artifact).parent
            info = {"tqt_accuracy": float(acc), "artifact": run.rel(artifact),
                    "checkpoint": run.rel(folder / "checkpoint"),
                    "config": run.rel(folder / "config.json")}  # fmt: skip
            write_json(marker, info)
            click.echo(f"      {cand.id:<40} TQT acc {acc:.2%}")
            return info, [marker, folder]

        def load(cand=cand, marker=marker):
            info = read_json(marker)
            click.echo(f"      reusing {cand.id} ({info['tqt_accuracy']:.2%})")
            return info

        shares = (f"finetune/{first}",) if first else ()  # a shared result: that unit is an input too
        inputs = {"upstream": run.upstream(cand.key, *shares), "finetune_steps": run.cfg.finetune_steps,
                  "seed": run.cfg.seed, "recipe": run.cfg.recipe,
                  "reference_images": run.cfg.reference_images}  # fmt: skip
        results[cand.id] = run.cached(f"finetune/{cand.id}", inputs, compute, load)
        tuned.setdefault(identity, cand.id)
    return results


def deploy(run: Run, data, finetuned: dict[str, dict]) -> dict[str, dict]:
    """Integerize, export for DORY, check, verify bit-exactness, and score the integer model on validation.

    A fine-tuning shared by several candidates (``same_as``) is deployed once; the others get a copy of its
    directory."""
    results: dict[str, dict] = {}
    done: dict[str, str] = {}  # artifact -> the candidate deployed from it
    for cid, info in finetuned.items():
        out_dir = run.out / "deploy" / cid
        first = done.get(info["artifact"])

        def compute(cid=cid, info=info, out_dir=out_dir, first=first):
            shutil.rmtree(out_dir, ignore_errors=True)  # no file of an earlier export may survive into this one
            if first is not None:
                shutil.copytree(run.path(results[first]["dir"]), out_dir)
                result = {**results[first], "dir": run.rel(out_dir)}
            else:
                result = _deploy_one(run, data, info, out_dir)
            write_json(out_dir / "result.json", result)
            click.echo(
                f"      {cid:<40} check {'ok' if not result['check_errors'] else 'FAILED'}  verify "
                f"{'bit-exact' if result['verified'] else 'MISMATCH'}  integer acc {result['integer_accuracy']:.2%}"
                + (f" (the network of {first})" if first else "")
            )
            return result, [out_dir]

        inputs = {"upstream": run.upstream(f"finetune/{cid}", *((f"deploy/{first}",) if first else ()))}
        results[cid] = run.cached(f"deploy/{cid}", inputs, compute, lambda d=out_dir: read_json(d / "result.json"))
        done.setdefault(info["artifact"], cid)
    return results


def _deploy_one(run: Run, data, info: dict, out_dir: Path) -> dict:
    qn = QuantizedNetwork.load(run.path(info["artifact"]))
    int_net = fb_deploy.integerize(qn)  # 32-bit requantization where provably precise, else 64-bit
    fb_deploy.export_dory(int_net, out_dir)
    errors = fb_deploy.errors(fb_deploy.check_model(out_dir / "model.onnx"))
    report = fb_deploy.verify(out_dir)
    tuned = NetConfig.load(run.path(info["config"]), run.cfg.allowed_bits)
    acc, agree = integer_accuracy(int_net, tuned, str(run.path(info["checkpoint"])), data)
    return {
        "check_errors": [str(e) for e in errors],
        "verified": bool(report.ok),
        "integer_accuracy": acc,
        "argmax_disagreements": agree,
        "dir": run.rel(out_dir),
    }


def integer_accuracy(int_net, config: NetConfig, checkpoint: str, data) -> tuple[float, int]:
    """Integer-model accuracy on the validation set, and how often its argmax differs from the fake-quant model."""
    images, labels = data.val_x, data.val_y
    pred = fb_deploy.integer_logits(int_net, images).argmax(-1)
    fake_quant = fake_quant_logits(config, checkpoint, images).argmax(-1)
    return float((pred == labels).mean()), int((pred != fake_quant).sum())


def fake_quant_logits(config: NetConfig, checkpoint: str, images) -> np.ndarray:
    """Logits of the fine-tuned fake-quant (TQT) model: the network the integer model must reproduce."""
    return np.asarray(fb_search.predict(fb_search.load_model(config, checkpoint, "tqt"), images))
