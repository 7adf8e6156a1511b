"""Train the built-in digits models and ship their weights and data splits (run once; needs
scikit-learn and torch, which qsim itself does not).

    python models/digits/train.py

Writes models/digits/digits.npz: the 8x8 sklearn digits (pixels 0..16) split into train /
calibration / test by a fixed permutation, the float32 weights of a 64-64-10 ReLU MLP
(w1, b1, w2, b2), and of a small CNN (c1: 1->8 3x3 pad 1, ReLU, max-pool 2; c2: 8->16 3x3
pad 1, ReLU, max-pool 2; flatten; fc: 64->10).
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

OUT = Path(__file__).with_name("digits.npz")


def main() -> None:
    digits = load_digits()
    x, y = digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, calib, test = order[:1200], order[1200:1400], order[1400:]
    mlp = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", max_iter=600, random_state=0)
    mlp.fit(x[train], y[train])
    print(f"MLP float test accuracy {mlp.score(x[test], y[test]):.4f}")
    cnn = train_cnn(x[train].reshape(-1, 1, 8, 8), y[train])
    np.savez_compressed(
        OUT, pixels=digits.data.astype(np.uint8), labels=y.astype(np.uint8),
        train=train, calib=calib, test=test,
        w1=mlp.coefs_[0].astype(np.float32), b1=mlp.intercepts_[0].astype(np.float32),
        w2=mlp.coefs_[1].astype(np.float32), b2=mlp.intercepts_[1].astype(np.float32), **cnn)


def train_cnn(x: np.ndarray, y: np.ndarray) -> dict:
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(60):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    w = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    # Linear stores (out, in); qsim's layers take (in, out), flattened in (C, H, W) order as torch
    return {"c1_w": w["0.weight"], "c1_b": w["0.bias"], "c2_w": w["3.weight"], "c2_b": w["3.bias"],
            "fc_w": w["7.weight"].T.copy(), "fc_b": w["7.bias"]}


if __name__ == "__main__":
    main()
