// Reference outputs of a TF.js graph model from TensorFlow.js itself (CPU backend), for the ONNX parity test of
// training/convert/face_id.py (tests/test_face_id.py).
//
//   npm install --prefix /tmp/tfjs @tensorflow/tfjs@4.22.0
//   NODE_PATH=/tmp/tfjs/node_modules node training/convert/tfjs_reference.js MODEL_DIR faceres input_1 \
//       global_pooling/Mean 2,224,224,3 in.f32 out.f32
//
// MODEL_DIR holds <name>.json and its weight files (package/models of the human-models tarball); in.f32 and
// out.f32 are raw little-endian float32 (NHWC input as the graph takes it, the node's output).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main([dir, name, inputName, outputName, shape, inFile, outFile]) {
  await tf.setBackend('cpu');
  const spec = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
  const group = spec.weightsManifest[0];
  const bin = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: spec.modelTopology, format: spec.format, generatedBy: spec.generatedBy,
    convertedBy: spec.convertedBy, weightSpecs: group.weights,
    weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength)}));
  const raw = fs.readFileSync(inFile);
  const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), shape.split(',').map(Number));
  const y = model.execute({[inputName]: x}, outputName);
  const out = y.dataSync();
  fs.writeFileSync(outFile, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  console.log(`tfjs ${tf.version.tfjs}: ${outputName} ${JSON.stringify(y.shape)}`);
}

main(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1); });
