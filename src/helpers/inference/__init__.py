"""Running a trained model: Keras and TFLite behind one interface, face detection, the predict
command, export."""
