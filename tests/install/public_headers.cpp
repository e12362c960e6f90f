// tests/install/public_headers.cpp: every public header, compiled with nothing but the headers'
// own folder on the include path (no Eigen, no engine source) and linked against the library: the
// installed API is the headers alone. Part of streamrnn, MIT licence.
#include <streamrnn/cuda.hpp>
#include <streamrnn/streamrnn.h>
#include <streamrnn/streamrnn.hpp>

#include <cstdio>
#include <memory>
#include <vector>

int main()
{
    streamrnn::ModelSpec spec;
    spec.kind = streamrnn::CellKind::gru;
    spec.input_size = 2;
    spec.hidden_size = 3;
    auto model = std::make_shared<const streamrnn::Model>(spec, 1);
    streamrnn::Stream stream(model, 1);
    std::vector<float> x(2, 0.5f), y(3);
    if (!stream.step(x.data(), y.data()))
        return 1;
    std::printf("%s %s: y = %g %g %g\n", streamrnn_version(), streamrnn::kind_name(spec.kind), y[0], y[1], y[2]);
    return 0;
}
