// tests/cpp/test_model_file.cpp: model files round-trip, and truncated or corrupt ones throw, never crash.
// Part of streamrnn, MIT licence.
#include <doctest/doctest.h>

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace streamrnn;

namespace {

using Bytes = std::vector<std::uint8_t>;

ModelSpec make_spec(CellKind kind, int input, int hidden)
{
    ModelSpec spec;
    spec.kind = kind;
    spec.input_size = input;
    spec.hidden_size = hidden;
    return spec;
}

/// Enough of every kind and option that each branch of the tensor table is written and read.
std::vector<ModelSpec> specs()
{
    std::vector<ModelSpec> all;
    all.push_back(make_spec(CellKind::lstm, 3, 5));
    ModelSpec spec = make_spec(CellKind::lstm, 3, 6);
    spec.proj_size = 4;
    spec.num_layers = 2;
    spec.dropout = 0.1;
    all.push_back(spec);
    for (bool reset_after : {true, false}) {
        spec = make_spec(CellKind::gru, 4, 3);
        spec.reset_after = reset_after;
        spec.num_layers = 2;
        spec.bidirectional = true;
        all.push_back(spec);
    }
    spec = make_spec(CellKind::rnn_tanh, 2, 4);
    spec.batch_first = true;
    spec.bias = false;
    all.push_back(spec);
    spec = make_spec(CellKind::rnn_relu, 4, 4);
    spec.num_layers = 3;
    spec.residual = true;
    spec.dropout = 1.0 / 3.0;
    all.push_back(spec);
    spec = make_spec(CellKind::lstm, 2, 3);
    spec.num_layers = 3;
    spec.bidirectional = true;
    spec.proj_size = 2;
    all.push_back(spec);
    for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh}) {
        spec = make_spec(kind, 3, 2);
        spec.is_cell = true;
        all.push_back(spec);
    }
    // ONNX's cell options (format version 2), with alphas that take all 9 digits to read back.
    spec = make_spec(CellKind::lstm, 3, 4);
    spec.bidirectional = true;
    spec.peepholes = true;
    spec.input_forget = true;
    spec.clip = 2.5;
    spec.activations = {{Activation::hard_sigmoid, 0.3f, 0.45f}, {Activation::leaky_relu, 0.123456789f},
                        {Activation::softsign}, {Activation::sigmoid}, {Activation::scaled_tanh, 1.7f, 0.6f},
                        {Activation::elu, 0.9f}};
    all.push_back(spec);
    spec = make_spec(CellKind::gru, 2, 3);
    spec.reset_after = false;
    spec.activations = {{Activation::softplus}, {Activation::affine, 0.5f, -0.25f}};
    all.push_back(spec);
    spec = make_spec(CellKind::rnn_tanh, 2, 3);
    spec.clip = 0.75;
    all.push_back(spec);
    return all;
}

Model options_model()
{
    ModelSpec spec = make_spec(CellKind::lstm, 2, 3);
    spec.peepholes = true;
    spec.activations = {{Activation::leaky_relu, 0.01f}, {Activation::tanh}, {Activation::tanh}};
    return Model(spec, 3);
}

Model small_model() { return Model(make_spec(CellKind::gru, 2, 3), 7); }

void check_same(const Model& a, const Model& b)
{
    CHECK(a.spec() == b.spec());
    REQUIRE(a.parameter_count() == b.parameter_count());
    CHECK(std::memcmp(a.parameters(), b.parameters(), a.parameter_count() * sizeof(float)) == 0);
}

std::string header_of(const Bytes& file)
{
    std::uint64_t size = 0;
    for (int i = 0; i < 8; ++i) {
        size |= std::uint64_t(file[i]) << (8 * i);
    }
    return std::string(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(size));
}

/// A safetensors file from a header text and data, the length written little-endian.
Bytes make_file(const std::string& header, const Bytes& data)
{
    Bytes file(8 + header.size() + data.size());
    for (int i = 0; i < 8; ++i) {
        file[i] = static_cast<std::uint8_t>(std::uint64_t(header.size()) >> (8 * i));
    }
    std::copy(header.begin(), header.end(), file.begin() + 8);
    std::copy(data.begin(), data.end(), file.end() - static_cast<std::ptrdiff_t>(data.size()));
    return file;
}

/// `file` with its header length field set to `length`.
Bytes with_length(Bytes file, std::uint64_t length)
{
    for (int i = 0; i < 8; ++i) {
        file[i] = static_cast<std::uint8_t>(length >> (8 * i));
    }
    return file;
}

/// `file` with the first `from` in its header replaced by `to`.
Bytes edit_header(const Bytes& file, const std::string& from, const std::string& to)
{
    std::string header = header_of(file);
    const std::size_t at = header.find(from);
    REQUIRE(at != std::string::npos);
    header.replace(at, from.size(), to);
    return make_file(header, Bytes(file.begin() + 8 + static_cast<std::ptrdiff_t>(header_of(file).size()), file.end()));
}

/// The "__metadata__" object of a saved file, as text (its values hold no braces).
std::string metadata_of(const Bytes& file)
{
    const std::string header = header_of(file);
    const std::size_t begin = header.find("{", 1);
    return header.substr(begin, header.find('}') - begin + 1);
}

Model load(const Bytes& file) { return load_model(file.data(), file.size()); }

void check_rejected(const Bytes& file, const char* why)
{
    CHECK_THROWS_WITH_AS(load(file), doctest::Contains(why), FormatError);
    CHECK_THROWS_WITH_AS(load(file), doctest::Contains("model file: "), FormatError);
}

/// A header naming the tensors of a small GRU in `small_model()`'s file, with `tensors` in place
/// of its tensor entries.
Bytes with_tensors(const std::string& tensors, std::size_t data_size)
{
    return make_file("{\"__metadata__\":" + metadata_of(save_model_bytes(small_model())) + tensors + "}",
                     Bytes(data_size));
}

std::filesystem::path temp_path()
{
    std::random_device random;
    return std::filesystem::temp_directory_path() / ("streamrnn_test_" + std::to_string(random()) + ".safetensors");
}

}  // namespace

TEST_CASE("every kind of model round-trips through bytes and files exactly")
{
    std::uint64_t seed = 1;
    for (const ModelSpec& spec : specs()) {
        CAPTURE(kind_name(spec.kind));
        CAPTURE(spec.num_layers);
        CAPTURE(spec.is_cell);
        const Model model(spec, seed++);
        const Bytes file = save_model_bytes(model);
        CHECK((8 + header_of(file).size()) % 8 == 0);
        const Model loaded = load(file);
        check_same(model, loaded);
        CHECK(save_model_bytes(loaded) == file);

        const std::filesystem::path path = temp_path();
        save_model(model, path.string());
        check_same(model, load_model(path.string()));
        std::filesystem::remove(path);
    }
}

TEST_CASE("the file is little-endian float32 and its metadata is readable text")
{
    ModelSpec spec = make_spec(CellKind::rnn_tanh, 1, 1);
    spec.bias = false;
    spec.dropout = 0.1;
    Model model(spec);
    Trainable::Update update = model.update();
    update.data()[0] = 1.0f;  // 0x3F800000
    update.commit();
    const Bytes file = save_model_bytes(model);
    const std::string header = header_of(file);
    CHECK(header.find("\"dropout\":\"0.1\"") != std::string::npos);
    CHECK(header.find("\"mode\":\"RNN_TANH\"") != std::string::npos);
    CHECK(header.find("\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]}")
          != std::string::npos);
    const Bytes data(file.end() - 8, file.end());
    CHECK(data == Bytes{0x00, 0x00, 0x80, 0x3F, 0, 0, 0, 0});
}

TEST_CASE("a file loads from an unaligned buffer")
{
    const Model model = small_model();
    const Bytes file = save_model_bytes(model);
    Bytes shifted(1);
    shifted.insert(shifted.end(), file.begin(), file.end());
    check_same(model, load_model(shifted.data() + 1, file.size()));
}

TEST_CASE("tensors in another order, with gaps and trailing bytes, load as other writers leave them")
{
    const Model model = small_model();
    std::string tensors;
    Bytes data;
    for (auto tensor = model.tensors().rbegin(); tensor != model.tensors().rend(); ++tensor) {
        data.resize(data.size() + 4);  // a gap
        const std::size_t begin = data.size();
        for (std::size_t i = 0; i < tensor->size; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, model.parameters() + tensor->offset + i, 4);
            for (int b = 0; b < 4; ++b) {
                data.push_back(static_cast<std::uint8_t>(bits >> (8 * b)));
            }
        }
        tensors += ",\n  \"" + tensor->name + "\": {\"data_offsets\": [" + std::to_string(begin) + ", "
                   + std::to_string(data.size()) + "], \"shape\": [" + std::to_string(tensor->shape[0])
                   + (tensor->shape.size() > 1 ? ", " + std::to_string(tensor->shape[1]) : "")
                   + "], \"dtype\": \"F32\"}";
    }
    data.resize(data.size() + 5);
    const std::string metadata = metadata_of(save_model_bytes(model));
    const Bytes file = make_file("{\"__metadata__\": " + metadata + tensors + "}    ", data);
    check_same(model, load(file));
}

TEST_CASE("every truncation of a file throws FormatError")
{
    const Bytes file = save_model_bytes(small_model());
    for (std::size_t size = 0; size < file.size(); ++size) {
        CAPTURE(size);
        // An exact-size copy, so that a read past the end is a read past an allocation.
        const Bytes prefix(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(size));
        CHECK_THROWS_AS(load_model(prefix.data(), prefix.size()), FormatError);
    }
}

TEST_CASE("random byte changes in the header never crash")
{
    const Bytes file = save_model_bytes(small_model());
    const std::size_t header_end = 8 + header_of(file).size();
    std::mt19937 random(12345);
    int loaded = 0;
    for (int trial = 0; trial < 20000; ++trial) {
        Bytes changed = file;
        const int changes = 1 + trial % 3;
        for (int i = 0; i < changes; ++i) {
            changed[random() % header_end] = static_cast<std::uint8_t>(random());
        }
        try {
            load(changed);
            ++loaded;
        } catch (const FormatError&) {
        } catch (const ArgumentError&) {
        }
    }
    MESSAGE(loaded << " of 20000 changed files still loaded");
}

TEST_CASE("a missing or unwritable file is a FileError with errno")
{
    const std::filesystem::path path = temp_path();
    try {
        load_model(path.string());
        FAIL("no exception");
    } catch (const FileError& error) {
        CHECK(error.error_number == ENOENT);
        CHECK(std::string(error.what()).find(path.string()) != std::string::npos);
    }
    try {
        save_model(small_model(), (path / "model.safetensors").string());
        FAIL("no exception");
    } catch (const FileError& error) {
        CHECK(error.error_number == ENOENT);
    }
}

TEST_CASE("a file of another format or version is rejected")
{
    const Bytes file = save_model_bytes(small_model());
    check_rejected(edit_header(file, "\"format_version\":\"1\"", "\"format_version\":\"4\""), "format_version \"4\"");
    check_rejected(edit_header(file, "\"format\":\"streamrnn\"", "\"format\":\"pt\""), "not a streamrnn model");
    check_rejected(edit_header(file, "\"__metadata__\"", "\"__metadata\""), "not a streamrnn model");
    check_rejected(edit_header(file, "\"format_version\":\"1\",", ""), "no \"format_version\"");
    check_rejected(edit_header(file, "\"hidden_size\":\"3\",", ""), "no \"hidden_size\"");
    check_rejected(edit_header(file, "\"mode\":\"GRU\"", "\"mode\":\"LSTM2\""), "\"mode\"");
    check_rejected(edit_header(file, "\"bias\":\"true\"", "\"bias\":\"yes\""), "\"bias\"");
    check_rejected(edit_header(file, "\"input_size\":\"2\"", "\"input_size\":\"2.0\""), "\"input_size\"");
    check_rejected(edit_header(file, "\"input_size\":\"2\"", "\"input_size\":\"99999999999\""), "\"input_size\"");
    check_rejected(edit_header(file, "\"input_size\":\"2\"", "\"input_size\":\"0\""), "invalid architecture");
    check_rejected(edit_header(file, "\"input_size\":\"2\"", "\"input_size\":2"), "not a string");
    check_rejected(edit_header(file, "\"dropout\":\"0\"", "\"dropout\":\"0,5\""), "\"dropout\"");
    check_rejected(edit_header(file, "\"dropout\":\"0\"", "\"dropout\":\"nan\""), "\"dropout\"");
    // Sizes that pass validate() but whose weights the file does not hold, so nothing is allocated.
    check_rejected(edit_header(file, "\"hidden_size\":\"3\"", "\"hidden_size\":\"1000000\""), "bytes of weights");

    // Version 2, the cell options: written only for a model with some, and each checked.
    CHECK(header_of(file).find("activations") == std::string::npos);
    const Bytes options = save_model_bytes(options_model());
    CHECK(header_of(options).find("\"format_version\":\"2\"") != std::string::npos);
    // Floats as their shortest decimals: 0.01f, not 0.0099999997764825821.
    CHECK(header_of(options).find("\"activations\":\"LeakyRelu:0.01,Tanh,Tanh\"") != std::string::npos);
    check_rejected(edit_header(options, "\"format_version\":\"2\"", "\"format_version\":\"1\""),
                   "weight_peephole_l0\" is not part of");
    check_rejected(edit_header(options, "\"peepholes\":\"true\",", ""), "no \"peepholes\"");
    check_rejected(edit_header(options, "LeakyRelu:0.01", "LeakyRelu:x"), "\"activations\"");
    check_rejected(edit_header(options, "LeakyRelu:0.01", "Swish"), "\"activations\"");
    check_rejected(edit_header(options, "LeakyRelu:0.01", "LeakyRelu:0.01:1:2"), "\"activations\"");
    check_rejected(edit_header(options, "LeakyRelu:0.01", "LeakyRelu:1e39"), "\"activations\"");
    check_rejected(edit_header(options, "LeakyRelu:0.01,", ""), "invalid architecture: activations: expected 3");
    check_rejected(edit_header(options, "LeakyRelu:0.01", "Tanh:0.5"), "Tanh takes no alpha");
    check_rejected(edit_header(options, "\"clip\":\"0\"", "\"clip\":\"-1\""), "invalid architecture: clip");
}

TEST_CASE("tensors that do not match the architecture are rejected")
{
    const Bytes file = save_model_bytes(small_model());
    check_rejected(edit_header(file, "\"bias_hh_l0\"", "\"bias_hh_l7\""), "\"bias_hh_l7\" is not part of a GRU");
    check_rejected(edit_header(file, "\"dtype\":\"F32\"", "\"dtype\":\"F16\""), "dtype \"F16\"");
    check_rejected(edit_header(file, "\"shape\":[9,2]", "\"shape\":[2,9]"), "expected (9, 2)");
    check_rejected(edit_header(file, "\"shape\":[9,2]", "\"shape\":[9,2,1]"), "has shape (9, 2, 1)");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,76]"), "overlap");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,68]"), "68 bytes of data");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[72,0]"), "outside");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,72,0]"), "2 entries");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,72.0]"), "not an integer");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[-0,72]"), "not an integer");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,1e2]"), "not an integer");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,9007199254740993]"),
                   "not an integer");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,184467440737095516160]"),
                   "not an integer");
    check_rejected(edit_header(file, "\"data_offsets\":[0,72]", "\"data_offsets\":[0,9007199254740992]"), "outside");
    check_rejected(edit_header(file, "\"dtype\":\"F32\",", "\"dtype\":\"F32\",\"extra\":1,"), "unknown field");
    check_rejected(edit_header(file, "\"dtype\":\"F32\",", ""), "needs a string \"dtype\"");
    check_rejected(with_tensors(",\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[9,2],\"data_offsets\":[0,72]}", 72),
                   "bytes of weights");
}

TEST_CASE("a tensor missing from a file that holds enough bytes is named")
{
    const Model model = small_model();
    std::string tensors;
    std::size_t offset = 0;
    for (const TensorInfo& tensor : model.tensors()) {
        const std::size_t end = offset + 4 * tensor.size;
        if (tensor.name != "bias_ih_l0") {
            tensors += ",\"" + tensor.name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(tensor.shape[0])
                       + (tensor.shape.size() > 1 ? "," + std::to_string(tensor.shape[1]) : "")
                       + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
        }
        offset = end;
    }
    check_rejected(with_tensors(tensors, offset), "tensor \"bias_ih_l0\" is missing");
}

TEST_CASE("malformed headers are rejected by the JSON reader")
{
    const Bytes file = save_model_bytes(small_model());
    const Bytes data(file.begin() + 8 + static_cast<std::ptrdiff_t>(header_of(file).size()), file.end());
    const std::string header = header_of(file);
    const std::string body = header.substr(0, header.find_last_of('}') + 1);

    check_rejected(with_length(file, file.size() - 7), "exceeds the");
    check_rejected(with_length(file, std::uint64_t(1) << 63), "exceeds the");
    check_rejected(with_length(make_file(header, Bytes(100000008)), 100000001), "exceeds safetensors' limit");
    check_rejected(make_file("", data), "not valid JSON");
    check_rejected(make_file("[]", data), "not a JSON object");
    check_rejected(make_file(body + " x", data), "unexpected data after the JSON value");
    check_rejected(make_file(body + "}", data), "unexpected data");
    check_rejected(make_file(body.substr(0, body.size() - 1), data), "not valid JSON");
    check_rejected(make_file(std::string(1, '\0') + body, data), "not valid JSON");
    check_rejected(edit_header(file, "\"format\":\"streamrnn\"", "\"format\":\"streamrnn\",\"format\":\"x\""),
                   "duplicate key \"format\"");
    check_rejected(edit_header(file, ",\"weight_hh_l0\"", ",\"weight_ih_l0\""), "duplicate key");
    check_rejected(edit_header(file, "\"format\":", "\"format\" "), "expected ':'");
    check_rejected(edit_header(file, "\"GRU\"", "\"G\nU\""), "control character");
    check_rejected(edit_header(file, "\"GRU\"", "\"G\\xU\""), "invalid escape");
    check_rejected(edit_header(file, "\"GRU\"", "\"G\xff\""), "invalid UTF-8");
    check_rejected(edit_header(file, "\"GRU\"", "\"G\xc0\xaf\""), "invalid UTF-8");
    check_rejected(edit_header(file, "\"GRU\"", "\"\\ud800\""), "surrogate");
    check_rejected(edit_header(file, "\"GRU\"", "\"\\udc00\\ud800\""), "surrogate");
    check_rejected(edit_header(file, "\"GRU\"", "\"\\u00g0\""), "hex digit");
    check_rejected(edit_header(file, "\"GRU\"", "tru"), "invalid literal");
    check_rejected(edit_header(file, "\"GRU\"", "01"), "leading zero");
    check_rejected(edit_header(file, "\"GRU\"", "1."), "digit after '.'");
    check_rejected(edit_header(file, "\"GRU\"", "[1,]"), "unexpected character");
    check_rejected(make_file(std::string(100000, '[') + std::string(100000, ']'), data), "nested too deeply");

    // Escapes, other values and extra metadata are fine: only the fields we read are checked.
    const Model loaded = load(edit_header(
        file, "\"format\":", "\"note\":\"\\u00e9\\ud83d\\ude00 \\\"\\/\\b\\f\\n\\r\\t \xc3\xa9\",\"format\":"));
    check_same(small_model(), loaded);
    CHECK_NOTHROW(load(edit_header(file, "\"GRU\"", "\"\\u0047RU\"")));
}
