# Stack Overflow 45337371 (DeepLocalize Benchmark/StackOverflow/45337371), ported to Keras 3.
# Dense(1, activation="softmax") as the output of a binary classifier.
import numpy as np
import keras
from sklearn.datasets import make_classification

keras.utils.set_random_seed(0)
x, y = make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=0)
x = x.astype("float32")
y = y.astype("float32")
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="softmax")])
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x, y, epochs=10, batch_size=32, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
