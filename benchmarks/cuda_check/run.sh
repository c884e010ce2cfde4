#!/bin/bash
# CUDA check on a GPU machine: build llama.cpp's llama-bench (the tree vendored in llama-cpp-python 0.3.36) for sm_90
# and run Llama-2-7B-shaped synthetic models, pp512 / tg128, as llama.cpp discussion #15013 does. Results land in
# $OUT as llama-bench JSON; device_db/measured_runs_dev.csv holds the H200 run of 2026-11-27.
#
# Set-up (here, with internet to PyPI): put in .gpu/ (git-ignored) the pruned llama.cpp tree as .gpu/lc
# (vendor/llama.cpp of `pip download --no-binary :all: llama-cpp-python==0.3.36`: CMakeLists.txt cmake common ggml
# include src vendor, tools/llama-bench only, the other ggml backends removed), the gguf wheel as .gpu/whl/, and this
# folder's models.py; then run `bash .gpu/run.sh` on the machine with .gpu carried.
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv > $OUT/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/m
( cd .gpu && python3 models.py /tmp/m l7b-q4_0 l7b-q8_0 l7b-q4_k_m ) > $OUT/models.log 2>&1 &
start=$(date +%s)
cmake -S .gpu/lc -B /tmp/b -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON > $OUT/cfg.log 2>&1 || exit 2
cmake --build /tmp/b --target llama-bench -j 16 > /tmp/build.log 2>&1; rc=$?
tail -c 20000 /tmp/build.log > $OUT/build.log; echo "build rc $rc in $(( $(date +%s) - start )) s" >> $OUT/models.log
wait
ls -la /tmp/m >> $OUT/models.log
[ $rc -eq 0 ] || exit 3
for m in l7b-q4_0 l7b-q8_0 l7b-q4_k_m; do
  /tmp/b/bin/llama-bench -m /tmp/m/$m.gguf -p 512 -n 128 -ngl 99 -r 3 -o json > $OUT/$m.json 2>> $OUT/bench.err
done
echo done
