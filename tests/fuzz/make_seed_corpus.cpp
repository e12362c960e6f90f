// tests/fuzz/make_seed_corpus.cpp: writes the fuzzers' seed corpus, a small file of every kind.
// Part of streamrnn, MIT licence.
//
// Usage: make_seed_corpus <folder>. Model files of every cell kind and option (written by
// save_model, so each is one the reader accepts), and tensor files that are not model files.
// tests/fuzz/CMakeLists.txt adds the model files in tests/data/embedded beside them.
#include "streamrnn/model_file.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

using namespace streamrnn;

namespace {

ModelSpec spec_of(CellKind kind, int input, int hidden)
{
    ModelSpec spec;
    spec.kind = kind;
    spec.input_size = input;
    spec.hidden_size = hidden;
    return spec;
}

/// Small models (a few hundred bytes of weights), so that mutations stay cheap.
std::vector<std::pair<std::string, ModelSpec>> model_seeds()
{
    std::vector<std::pair<std::string, ModelSpec>> seeds;
    auto add = [&](const std::string& name, const ModelSpec& spec) { seeds.emplace_back(name, spec); };
    add("lstm", spec_of(CellKind::lstm, 3, 4));
    ModelSpec spec = spec_of(CellKind::lstm, 3, 5);
    spec.proj_size = 2;
    spec.num_layers = 2;
    spec.dropout = 0.25;
    add("lstm_proj_stacked", spec);
    spec = spec_of(CellKind::lstm, 2, 3);
    spec.proj_size = 2;
    spec.bidirectional = true;
    spec.num_layers = 2;
    add("lstm_proj_bidirectional", spec);
    spec = spec_of(CellKind::lstm, 2, 3);
    spec.bias = false;
    spec.batch_first = true;
    add("lstm_no_bias", spec);
    add("gru_reset_after", spec_of(CellKind::gru, 3, 4));
    spec = spec_of(CellKind::gru, 3, 4);
    spec.reset_after = false;
    add("gru_reset_before", spec);
    spec = spec_of(CellKind::gru, 2, 3);
    spec.bidirectional = true;
    spec.num_layers = 2;
    spec.residual = true;
    add("gru_bidirectional_residual", spec);
    add("rnn_tanh", spec_of(CellKind::rnn_tanh, 3, 4));
    spec = spec_of(CellKind::rnn_relu, 4, 4);
    spec.num_layers = 3;
    spec.residual = true;
    add("rnn_relu_residual", spec);
    spec = spec_of(CellKind::rnn_tanh, 2, 3);
    spec.bias = false;
    spec.num_layers = 2;
    add("rnn_tanh_no_bias_stacked", spec);
    for (const auto& [name, kind] : {std::pair{"lstm_cell", CellKind::lstm}, std::pair{"gru_cell", CellKind::gru},
                                     std::pair{"rnn_tanh_cell", CellKind::rnn_tanh},
                                     std::pair{"rnn_relu_cell", CellKind::rnn_relu}}) {
        spec = spec_of(kind, 3, 2);
        spec.is_cell = true;
        add(name, spec);
    }
    spec = spec_of(CellKind::gru, 3, 2);
    spec.is_cell = true;
    spec.reset_after = false;
    add("gru_cell_reset_before", spec);
    return seeds;
}

/// The tensors of `model`, named with `prefix`.
std::vector<NamedTensor> tensors_of(const Model& model, const std::string& prefix)
{
    std::vector<NamedTensor> tensors;
    for (const TensorInfo& tensor : model.tensors()) {
        const float* values = model.parameters() + tensor.offset;
        tensors.push_back({prefix + tensor.name, tensor.shape, std::vector<float>(values, values + tensor.size)});
    }
    return tensors;
}

/// Tensor files of the kinds a model loader must refuse, or (reordered) accept.
std::vector<std::pair<std::string, TensorFile>> other_seeds()
{
    const Model lstm(spec_of(CellKind::lstm, 3, 4), 1);
    std::vector<std::pair<std::string, std::string>> model_metadata;
    {
        // The metadata save_model writes, from a file it wrote.
        const std::vector<std::uint8_t> bytes = save_model_bytes(lstm);
        model_metadata = read_tensor_file(bytes.data(), bytes.size()).metadata;
    }
    std::vector<std::pair<std::string, TensorFile>> seeds;
    TensorFile file;
    file.tensors = tensors_of(lstm, "");
    seeds.emplace_back("no_metadata", file);

    file.has_metadata = true;
    file.metadata = {{"note", "tensors without a format"}};
    seeds.emplace_back("metadata_without_format", file);

    file.metadata = model_metadata;
    std::reverse(file.tensors.begin(), file.tensors.end());
    seeds.emplace_back("lstm_tensors_reversed", file);  // any order loads

    file.tensors.pop_back();
    seeds.emplace_back("lstm_tensor_missing", file);

    file.tensors.clear();
    seeds.emplace_back("metadata_only", file);

    for (auto& [key, value] : file.metadata)
        if (key == "format_version")
            value = "2";
    file.tensors = tensors_of(lstm, "");
    seeds.emplace_back("format_version_2", file);

    // A composite model as Python's streamrnn.models saves one: an embedding, an LSTM, a head.
    const Model classifier_lstm(spec_of(CellKind::lstm, 2, 3), 2);
    file.metadata = {{"format", "streamrnn"},
                     {"format_version", "1"},
                     {"model", "LSTMClassifier"},
                     {"config", "{\"vocab_size\": 5, \"embed_dim\": 2, \"hidden_size\": 3, \"num_classes\": 2}"}};
    file.tensors = {{"embedding.weight", {5, 2}, std::vector<float>(10, 0.5f)}};
    for (NamedTensor& tensor : tensors_of(classifier_lstm, "lstm."))
        file.tensors.push_back(std::move(tensor));
    file.tensors.push_back({"head.weight", {2, 3}, std::vector<float>(6, -0.25f)});
    file.tensors.push_back({"head.bias", {2}, {0.0f, 1.0f}});
    seeds.emplace_back("composite_classifier", file);
    return seeds;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <folder>\n", argv[0]);
        return 2;
    }
    const std::string folder = argv[1];
    std::uint64_t seed = 1;
    for (const auto& [name, spec] : model_seeds())
        save_model(Model(spec, seed++), folder + "/" + name + ".safetensors");
    for (const auto& [name, file] : other_seeds())
        save_tensor_file(file, folder + "/" + name + ".safetensors");
    return 0;
}
