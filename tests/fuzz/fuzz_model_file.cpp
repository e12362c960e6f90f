// tests/fuzz/fuzz_model_file.cpp: libFuzzer harness for the model file reader and a model it loads.
// Part of streamrnn, MIT licence.
//
// Any bytes go to try_read_tensor_file and try_load_model, which must report a bad file as a
// FormatError status and leave their output alone. A file that loads must read as a tensor file,
// save to bytes that load as the same model, and run: streamed a few steps (unidirectional) or
// run whole (bidirectional) on zeros. A crash, a sanitizer report or a broken check (abort) is a
// finding.
#include "streamrnn/model_file.hpp"
#include "streamrnn/stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

using namespace streamrnn;

namespace {

/// Models with more weights than this load but do not run: a file's weights are bounded by its
/// size, so only a large input, never a forged header, gets here, and a run's cost is linear in
/// the weights.
constexpr std::size_t max_run_weights = std::size_t(1) << 18;

void require(bool condition)
{
    if (!condition)
        std::abort();
}

void check_failure(const Status& status)
{
    require(status.kind == ErrorKind::format && !status.message.empty());
}

/// A few steps of every kind of call, on zeros; `batch` is 1 or 2.
void run(const std::shared_ptr<const Model>& model, Index batch)
{
    const ModelSpec& spec = model->spec();
    constexpr Index T = 3;
    std::vector<float> x(static_cast<std::size_t>(T * batch * spec.input_size));
    std::vector<float> y(static_cast<std::size_t>(T * batch * spec.directions() * spec.output_size()));
    if (spec.bidirectional) {
        // Streams refuse a bidirectional model; a whole sequence, its last row one step short.
        const std::size_t cells = static_cast<std::size_t>(spec.num_layers * spec.directions() * batch);
        std::vector<float> h(cells * static_cast<std::size_t>(spec.output_size()));
        std::vector<float> c(spec.has_cell_state() ? cells * static_cast<std::size_t>(spec.hidden_size) : 0);
        const std::int64_t lengths[] = {T, T - 1};
        model->forward(x.data(), T, batch, batch == 2 ? lengths : nullptr, y.data(), h.data(),
                       spec.has_cell_state() ? c.data() : nullptr);
        return;
    }
    Stream stream(model, batch);
    stream.step(x.data(), y.data());
    stream.process(x.data(), y.data(), T);
    stream.reset(batch - 1);
    stream.step(x.data(), y.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    TensorFile file;
    const Status read = try_read_tensor_file(data, size, file);
    if (!read.ok()) {
        check_failure(read);
        require(!file.has_metadata && file.metadata.empty() && file.tensors.empty());
    }

    std::optional<Model> loaded;
    const Status load = try_load_model(data, size, loaded);
    if (!load.ok()) {
        check_failure(load);
        require(!loaded);
        return 0;
    }
    // A model file is a tensor file whose tensors are the model's, one each.
    require(read.ok() && loaded && file.tensors.size() == loaded->tensors().size());

    const Model& model = *loaded;
    const std::vector<std::uint8_t> saved = save_model_bytes(model);
    std::optional<Model> again;
    require(try_load_model(saved.data(), saved.size(), again).ok());
    const Model& copy = *again;
    require(copy.spec() == model.spec() && copy.parameter_count() == model.parameter_count()
            && std::memcmp(copy.parameters(), model.parameters(), model.parameter_count() * sizeof(float)) == 0);

    if (model.parameter_count() <= max_run_weights) {
        // The batch from the input, so that both sizes come up.
        run(std::make_shared<const Model>(std::move(*loaded)), 1 + Index(size % 2));
    }
    return 0;
}
