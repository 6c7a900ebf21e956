# Stack Overflow 34311586 (DeepLocalize Benchmark/StackOverflow/34311586), ported to Keras 3.
# XOR-like data; the one-unit output uses softmax and SGD's learning rate is 0.001.
import numpy as np
import keras
from sklearn.datasets import make_moons

keras.utils.set_random_seed(0)
x, y = make_moons(n_samples=600, noise=0.1, random_state=0)
x = x.astype("float32")
y = y.astype("float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(1, activation="softmax")])
sgd = keras.optimizers.SGD(learning_rate=0.001, momentum=0.9, nesterov=True)
model.compile(loss="binary_crossentropy", optimizer=sgd, metrics=["accuracy"])
model.fit(x, y, epochs=30, batch_size=16, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
