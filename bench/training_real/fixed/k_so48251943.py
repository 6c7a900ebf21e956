# Stack Overflow 48251943 (DeepLocalize Benchmark/StackOverflow/48251943), ported to Keras 3.
# Targets are -1/+1 but the output layer is ReLU, which cannot go below 0.
import numpy as np
import keras
from sklearn.datasets import make_moons

keras.utils.set_random_seed(0)
x, y = make_moons(n_samples=600, noise=0.1, random_state=1)
x = x.astype("float32")
y = (2.0 * y - 1.0).astype("float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="tanh")])
model.compile(loss="mean_squared_error", optimizer="adam")
model.fit(x, y, epochs=40, batch_size=16, verbose=0)
pred = np.sign(model.predict(x, verbose=0)[:, 0])
print("RESULT", float((pred == y).mean()))
