# Stack Overflow 31627380 (DeepLocalize Benchmark/StackOverflow/31627380), ported to Keras 3.
# A binary classifier ends in one unit with softmax and categorical_crossentropy.
import numpy as np
import keras
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

keras.utils.set_random_seed(0)
x, y = load_breast_cancer(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = y.astype("float32")
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="softmax")])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
h = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
