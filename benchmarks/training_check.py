"""Train MobileNetV2 x0.5 and a small random candidate on FSDD and the built-in data.

For each (dataset, model) it trains once with early stopping (patience + median rule fed by the
learning curves of the runs before it) and once on the full epoch budget, and prints test
accuracy, epochs, seconds and the epochs early stopping saved.

    python benchmarks/training_check.py [--epochs 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from moo_audio.data import FeatureCache, load_dataset
from moo_audio.nets import build, mobilenet_v2
from moo_audio.space import FrontEnd, SearchSpace
from moo_audio.training import CurveHistory, MedianStopping, Patience, TrainBudget, TrainData, train_candidate

SHARED = Path(os.environ.get("MOO_AUDIO_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def datasets(quick: bool):
    yield load_dataset("builtin", n_per_class=20 if quick else 60)
    fsdd = SHARED / "data" / "fsdd" / "recordings"
    if fsdd.is_dir():
        yield load_dataset("fsdd", root=str(fsdd))
    else:
        print(f"skipping FSDD: {fsdd} not found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="tiny data and 3 epochs")
    parser.add_argument("--cache", default=None, help="feature cache folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    cache = FeatureCache(args.cache)
    print(f"{'dataset':<9}{'model':<18}{'mode':<7}{'test acc':>9}{'val acc':>9}{'epochs':>7}"
          f"{'seconds':>9}  stop")
    for dataset in datasets(args.quick):
        fe = FrontEnd(sample_rate=dataset.sample_rate, clip_ms=dataset.clip_ms, n_mels=40)
        features = cache.get(dataset, fe)
        data = TrainData(*features.split("train"), *features.split("val"), *features.split("test"),
                         n_classes=features.n_classes)
        space = SearchSpace(sample_rate=dataset.sample_rate, n_classes=dataset.n_classes,
                            clip_ms=(dataset.clip_ms,), n_mels=(40,), win_ms=(25,), hop_ms=(10,),
                            max_blocks=4,
                            channels=(8, 16, 24, 32))
        candidates = {"mobilenet_v2 x0.5": mobilenet_v2(0.5, fe, dataset.n_classes),
                      "small random": space.sample(1, seed=3)[0]}
        history = CurveHistory()
        for name, genome in candidates.items():
            runs = {"early": (Patience(patience=5), MedianStopping(history)), "full": ()}
            results = {}
            for mode, rules in runs.items():
                torch.manual_seed(0)  # same initial weights for both modes
                r = train_candidate(build(genome), data, genome.frontend.input_shape,
                                    TrainBudget(max_epochs=epochs), rules, seed=0, threads=args.threads)
                results[mode] = r
                print(f"{dataset.name:<9}{name:<18}{mode:<7}{r.test_accuracy:>9.3f}{r.val_accuracy:>9.3f}"
                      f"{r.epochs:>7}{r.seconds:>9.1f}  {r.stop_reason}", flush=True)
            history.add(results["full"].curve)
            saved = results["full"].epochs - results["early"].epochs
            print(f"{'':<9}{name:<18}early stopping saved {saved} of {results['full'].epochs} epochs, "
                  f"{results['full'].seconds - results['early'].seconds:.1f} s")


if __name__ == "__main__":
    main()
