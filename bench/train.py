"""Training throughput (samples/s) of each ECG model and the separator, on CPU (and CUDA if present).

Each model is timed twice in the same run: default (contiguous) memory format as the baseline,
and channels-last, so the table says whether channels-last helps here. Inputs are random
tensors of the configured shapes; one optimiser step per batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import emit, median_seconds  # noqa: E402


def ecg_case(name: str, args: dict, batch: int):
    from pipeline.models import create_model

    from pipeline.transforms.rhythm import NETWORK_FEATURE_COUNT

    model = create_model(name, n_classes=4, n_features=NETWORK_FEATURE_COUNT, **args)
    x = torch.randn(batch, 10, 96, 32) if model.input_kind == "scalogram" else torch.randn(batch, 12, 1000)
    target = torch.randint(0, 4, (batch,))
    features = torch.randn(batch, NETWORK_FEATURE_COUNT)
    # features and target follow the input's device (they stayed on the CPU and crashed CUDA runs)
    return model, lambda m, xx: torch.nn.functional.cross_entropy(m(xx, features.to(xx.device)), target.to(xx.device)), x


def separator_case(batch: int):
    from pipeline.svs.config import SvsConfig
    from pipeline.svs.models import create_separator

    cfg = SvsConfig()
    model = create_separator("fcn", cfg.stft.n_bins, channels=(8, 16, 32, 64, 128), convs=1)
    x = torch.randn(batch, cfg.stft.n_bins, cfg.train.patch_frames)
    target = torch.rand_like(x)
    return model, lambda m, xx: torch.nn.functional.binary_cross_entropy_with_logits(m(xx), target.to(xx.device)), x


def samples_per_s(model, loss_fn, x, device, channels_last: bool, amp: bool) -> float:
    model = model.to(device).train()
    if channels_last and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    x = x.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, enabled=amp):
            loss = loss_fn(model, x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return x.shape[0] / median_seconds(step, repeats=5, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = {
        "cnn_lstm (the hybrid's network)": lambda: ecg_case("cnn_lstm", {"channels": [8, 16, 32]}, args.batch),
        "timm_cnn resnet18": lambda: ecg_case("timm_cnn", {"backbone": "resnet18"}, args.batch),
        "cnn1d": lambda: ecg_case("cnn1d", {}, args.batch),
        "separator fcn (svs-default)": lambda: separator_case(args.batch),
    }
    result, rows = {"batch": args.batch, "models": {}}, []
    for device in devices:
        amp = device.type == "cuda"
        for label, make in cases.items():
            model, loss_fn, x = make()
            base = samples_per_s(model, loss_fn, x, device, channels_last=False, amp=amp)
            model, loss_fn, x = make()
            cl = samples_per_s(model, loss_fn, x, device, channels_last=True, amp=amp)
            key = f"{label} [{device.type}]"
            result["models"][key] = {"samples_per_s": base, "channels_last_samples_per_s": cl, "channels_last_ratio": cl / base}
            rows.append((key, f"{base:8.1f} samples/s; channels-last {cl:8.1f} ({cl / base:.2f}x)"))
    emit("train", result, rows, args.json)


if __name__ == "__main__":
    main()
