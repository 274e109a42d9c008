extension ModelPlan {
    /// The kernel layout each weight of this plan's ops is read in, by
    /// tensor name: Winograd convolutions `winograd6`, upsampling
    /// convolutions `winograd6-upsample`, other convolutions, attention
    /// projections and untied linear layers `planar6`. Weights not listed
    /// (norms, SCN modulation convs, downsampling convs, embeddings, tied
    /// heads) stay `plain`.
    package var kernelLayouts: [String: TensorLayout] {
        var layouts: [String: TensorLayout] = [:]
        for op in ops {
            switch op {
            case .conv(let w, _, _, _):
                let winograd = TensorLayout.winogradServes(kernel: w.kernel, inChannels: w.inChannels, outChannels: w.outChannels)
                layouts[w.weightName] = winograd ? .winograd6 : .planar6
            case .upsampleConv(let w, _, _): layouts[w.weightName] = .winograd6Upsample
            case .attention(let a, _, _, _):
                for p in AttentionWeights.projections { layouts[a.weightName(p)] = .planar6 }
            case .linear(let l, _, _, _) where l.storedRows == l.outputs: layouts[l.weightName] = .planar6
            default: break
            }
        }
        return layouts
    }
}
