// cpp/src/record.cpp: sizing a training forward's record without losing the last one on failure.
// Part of streamrnn, MIT licence.
#include "record.hpp"

#include "sizes.hpp"

#include <algorithm>

namespace streamrnn {

void prepare_record(ForwardRecord& record, const ModelSpec& spec, Index T, Index B, const std::int64_t* lengths,
                    const std::vector<BatchPart>& parts)
{
    // Every product of sizes below is at most T * B * widest: checked once, so that none wraps on
    // a 32-bit host.
    Index widest = std::max<Index>(spec.gate_rows(), Index(spec.directions()) * spec.output_size());
    widest = std::max<Index>(widest, spec.input_size);
    checked_size({T, B, widest});

    // The sizes first (a pass that allocates nothing), to see whether the old buffers hold them:
    // then nothing is allocated and nothing can fail; else new buffers, made before the old ones
    // go, so that a failure leaves the last record whole for its backward.
    std::vector<std::size_t> sizes;
    for (const BatchPart& part : parts)
        RecordView::make(spec, T, part.rows, [&](Index count) -> float* {
            sizes.push_back(static_cast<std::size_t>(count));
            return nullptr;
        });
    bool fits = record.blocks.size() == sizes.size();
    for (std::size_t i = 0; fits && i < sizes.size(); ++i)
        fits = record.blocks[i].size() >= sizes[i];
    std::vector<Buffer> blocks;
    if (!fits)
        for (std::size_t size : sizes)
            blocks.emplace_back(size);
    std::vector<ForwardRecord::Part> views;
    views.reserve(parts.size());
    std::vector<std::int64_t> kept_lengths;
    if (lengths)
        kept_lengths.assign(lengths, lengths + B);

    // Nothing below allocates but what is reserved: the record changes all at once.
    std::vector<Buffer>& storage = fits ? record.blocks : blocks;
    std::size_t next = 0;
    for (const BatchPart& part : parts)
        views.push_back({part, RecordView::make(spec, T, part.rows, [&](Index) { return storage[next++].data(); })});
    if (!fits)
        record.blocks = std::move(blocks);
    record.parts = std::move(views);
    record.lengths = std::move(kept_lengths);
    record.T = T;
    record.B = B;
    record.chunks.windows.clear();
}

}  // namespace streamrnn
