"""Train the built-in digits MLP and ship its weights and data splits (run once; needs
scikit-learn, which qsim itself does not).

    python models/digits/train.py

Writes models/digits/digits.npz: the 8x8 sklearn digits (pixels 0..16) split into train /
calibration / test by a fixed permutation, and the float32 weights of a 64-64-10 ReLU MLP.
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
    print(f"float test accuracy {mlp.score(x[test], y[test]):.4f}")
    np.savez_compressed(
        OUT, pixels=digits.data.astype(np.uint8), labels=y.astype(np.uint8),
        train=train, calib=calib, test=test,
        w1=mlp.coefs_[0].astype(np.float32), b1=mlp.intercepts_[0].astype(np.float32),
        w2=mlp.coefs_[1].astype(np.float32), b2=mlp.intercepts_[1].astype(np.float32))


if __name__ == "__main__":
    main()
