"""The formal harness: the accelerator's top beside the reference (:mod:`hwqnn.formal.reference`)
under an environment that may do anything the AXI-Stream rules allow.

``frames`` input frames are free constants (``anyconst``: the solver picks every pixel); the
source offers their beats in order with ``tlast`` on each frame's last beat, and may pause before
any beat (a free ``gap`` each cycle) but, as the rules require, holds ``tvalid`` and ``tdata``
until the beat is taken; the sink's ``tready`` is free every cycle (back-pressure). The design
starts from its reset state (every register at its reset value). Properties:

- ``equivalence``: output beat ``j`` carries exactly the reference's scores and class of frame
  ``j`` (so also: frames come out in order, one beat each);
- ``protocol``: once ``m_axis_tvalid`` is offered it stays up, with ``tdata`` unchanged, until
  taken (unless a reset takes it away); ``tlast`` is 1 on every output beat; no output beat
  without a whole input frame before it (outputs never outnumber completed input frames);
  ``frame_error`` stays clear, since every ``tlast`` is on a frame boundary;
- ``cover``: the last frame's output beat is taken (the depth reaches it; a bounded proof that
  never reaches an output would prove nothing).

Two freedoms widen the environment (``free_tlast``, ``free_reset``):

- a free ``tlast`` on every beat (held with its beat): ``frame_error`` must then equal its
  definition exactly, set from the first beat whose ``tlast`` differs from "last beat of a
  frame" and cleared only by a reset, and the data must be unaffected (frames are counted, not
  delimited by ``tlast``), so the equivalence assertions stay;
- one free reset pulse on ``aresetn``, of any length, at any cycle (the source drops
  ``tvalid`` while it is low, as AXI-Stream asks): while ``aresetn`` is low and for two
  cycles after it rises, ``s_axis_tready`` and ``m_axis_tvalid`` are low; after a reset the
  design behaves as from power-on: the source goes on with the first frame it had not begun
  (a different free frame from any before), and the outputs after the reset must be exactly
  those frames' references, in order, none before its frame is whole (a frame left in a
  buffer, or half a frame, must never come out); ``cover_output_after_reset`` shows the depth
  reaches an output after a reset that followed an output.
"""

from __future__ import annotations

from hwqnn.bundle import Bundle
from hwqnn.formal.reference import WIDTH, window_pixels
from hwqnn.hw.manifest import LayerManifest, Manifest
from hwqnn.layers import Window
from hwqnn.layers.activation import Scores
from hwqnn.layers.dense import Layer
from hwqnn.layers.inputq import InputQuant

PROPERTIES = ("equivalence", "protocol", "cover")


def harness_verilog(
    b: Bundle, man: Manifest, frames: int = 2, free_tlast: bool = False, free_reset: bool = False
) -> str:
    """Module ``hwqnn_formal`` (one clock input) with the properties as ``assert``/``cover``
    statements, each labelled with its property's name."""
    p = man.ports
    raw = b.raw_bits
    chunk_bits = p.in_chunk * raw
    n_in = b.in_features
    beats = p.in_beats
    sw, c = p.score_width, p.classes
    total = frames * beats
    fb = max(1, (frames + 1).bit_length())
    bb = max(1, (total + 1).bit_length())
    rstn = "rstn" if free_reset else "1'b1"
    v = [
        "`default_nettype none",
        "module hwqnn_formal(input wire clk);",
        f"  (* anyconst *) reg [{frames * n_in * raw - 1}:0] frame;  // frame f at {n_in * raw}*f",
        "  (* anyseq *) reg gap;",
        "  (* anyseq *) reg ready;",
    ]
    if free_reset:
        v += ["  (* anyseq *) reg rstn_free;",
              "  reg was_low = 0, over = 0;  // one reset pulse, of any length, at any cycle",
              "  wire rstn = over || rstn_free;",
              "  always @(posedge clk) begin",
              "    if (!rstn) was_low <= 1;",
              "    if (was_low && rstn) over <= 1;",
              "  end"]  # fmt: skip
    v += [
        f"  reg [{bb - 1}:0] beat = 0;  // the next beat, counted over all frames",
        f"  reg [{fb - 1}:0] done = 0, started = 0;  // input frames taken whole, begun",
        "  reg valid = 0;",
        f"  wire [{bb - 1}:0] bi = beat % {beats};",
        "  // beat bi of frame f: the values past a frame's end in its last beat are the next",
        "  // frame's (or zeros): the design must ignore them, so they are left as they fall",
        f"  wire [{frames * n_in * raw + chunk_bits - 1}:0] padded = "
        f"{{{{{chunk_bits}{{1'b0}}}}, frame}};",
        f"  wire [{chunk_bits - 1}:0] chunk = "
        f"padded >> ({n_in * raw} * (beat / {beats}) + {chunk_bits} * bi);",
        "  wire s_ready, m_valid, m_last, frame_err;",
        f"  wire [{p.m_tdata_bits - 1}:0] m_data;",
        f"  wire s_valid = valid && {rstn};  // tvalid is low during a reset",
    ]
    if free_tlast:  # a free flip of tlast, drawn while no beat is pending and held with it
        v += ["  (* anyseq *) reg flip_next;", "  reg flip = 0;",
              "  always @(posedge clk) if (!(s_valid && !s_ready)) flip <= flip_next;",
              f"  wire s_last = (bi == {beats - 1}) ^ flip;"]  # fmt: skip
    else:
        v += [f"  wire s_last = bi == {beats - 1};"]
    v += [
        f"  {man.top} dut(.aclk(clk), .aresetn({rstn}),",
        f"    .s_axis_tdata({{{{{p.s_tdata_bits - chunk_bits}{{1'b0}}}}, chunk}}),"
        if p.s_tdata_bits > chunk_bits
        else "    .s_axis_tdata(chunk),",
        "    .s_axis_tvalid(s_valid), .s_axis_tready(s_ready), .s_axis_tlast(s_last),",
        "    .m_axis_tdata(m_data), .m_axis_tvalid(m_valid), .m_axis_tready(ready),",
        "    .m_axis_tlast(m_last), .frame_error(frame_err));",
        "  wire take_in = s_valid && s_ready;",
        "  wire take = m_valid && ready;  // an output beat taken",
        f"  reg [{fb - 1}:0] outs = 0;  // output beats taken (+ frames begun before a reset)",
        "  reg waited = 0;  // an output beat was offered last cycle and not taken",
        f"  reg [{p.m_tdata_bits - 1}:0] held = 0;",
        "  reg err = 0;  // frame_error's definition",
        "  reg [1:0] hold = 2;  // cycles of the design's reset left after aresetn rose",
        "  reg seen_out = 0, seen_reset = 0;  // an output, then a reset after it",
        "  // the source: a beat offered stays offered until taken; pauses only between beats",
        "  always @(posedge clk) begin",
        f"    if (!{rstn}) begin  // the source goes on with the next frame not yet started",
        f"      beat <= started * {beats}; done <= started; outs <= started;",
        "      valid <= 0; waited <= 0; err <= 0; hold <= 2; seen_reset <= seen_out;",
        "    end else begin",
        "      if (take_in) begin",
        "        beat <= beat + 1;",
        "        if (bi == 0) started <= started + 1;",
        f"        if (bi == {beats - 1}) done <= done + 1;",
        f"        valid <= (beat + 1 < {total}) && !gap;",
        f"      end else if (!valid) valid <= (beat < {total}) && !gap;",
        f"      if (take_in && s_last != (bi == {beats - 1})) err <= 1;",
        "      if (take) outs <= outs + 1;",
        "      if (take) seen_out <= 1;",
        "      waited <= m_valid && !ready;",
        "      if (hold != 0) hold <= hold - 1;",
        "    end",
        "    held <= m_data;",
        "  end",
    ]
    for f in range(frames):
        v.append(f"  wire signed [{WIDTH - 1}:0] " + ", ".join(f"r{f}_s{j}" for j in range(c))
                 + f"; wire [31:0] r{f}_cls;")  # fmt: skip
        ports = ", ".join(f".score{j}(r{f}_s{j})" for j in range(c))
        v.append(f"  hwqnn_ref ref{f}(.inputs(frame[{f * n_in * raw} +: {n_in * raw}]), "
                 f"{ports}, .cls(r{f}_cls));")  # fmt: skip
    v.append("  always @(*) begin")
    for f in range(frames):
        v.append(f"    if (take && outs == {f}) begin")
        for j in range(c):
            field = f"m_data[{sw * j + sw - 1}:{sw * j}]"
            ext = f"{{{{{WIDTH - sw}{{m_data[{sw * j + sw - 1}]}}}}, {field}}}"
            v.append(f"      equivalence_f{f}_score{j}: assert ($signed({ext}) == r{f}_s{j});")
        cls_field = f"m_data[{sw * c + p.class_bits - 1}:{sw * c}]"
        v.append(f"      equivalence_f{f}_class: assert ({cls_field} == r{f}_cls);")
        v.append("    end")
    v += [
        f"    if (waited && {rstn}) begin",
        "      protocol_valid_held: assert (m_valid);",
        "      protocol_data_stable: assert (m_data == held);",
        "    end",
        "    if (m_valid) protocol_tlast: assert (m_last);",
        "    if (take) protocol_no_output_without_frame: assert (outs < done);",
    ]
    if free_tlast or free_reset:
        v += ["    protocol_frame_error: assert (frame_err == err);"]
    else:
        v += ["    protocol_frame_error_clear: assert (!frame_err);"]
    if free_reset:
        v += ["    if (!rstn || hold != 0)",
              "      protocol_quiet_in_reset: assert (!s_ready && !m_valid);",
              "    if (take && seen_reset)",
              "      cover_output_after_reset: cover (1);"]  # fmt: skip
    else:
        v += [f"    if (take && outs == {frames - 1}) cover_last_output: cover (1);"]
    v += ["  end", "endmodule"]
    return "\n".join(v) + "\n"


def layer_harness_verilog(ly: Layer, man: LayerManifest, frames: int = 1) -> str:
    """Module ``hwqnn_layer_formal``: one MVTU alone (``man``, from
    :func:`hwqnn.hw.emit.generate_layer`) beside one layer reference
    (:func:`hwqnn.formal.reference.layer_reference_verilog`) per free input frame, under the
    same environment as the top's harness (pauses, back-pressure). Output beat ``q`` of frame
    ``f`` (neuron fold ``q``) must carry, in PE ``p``'s field, neuron ``q * PE + p``'s code or
    score of frame ``f``; the stream rules as on the top; a cover of the last beat."""
    signed = isinstance(ly.act, Scores)
    return unit_harness_verilog(man, ly.in_features, ly.out_features, ly.out_bits, signed,
                                "hwqnn_layer_ref", frames)  # fmt: skip


def front_harness_verilog(q: InputQuant, n_in: int, man: LayerManifest, frames: int = 2) -> str:
    """The same harness for the input quantizer alone (``man`` from
    :func:`hwqnn.hw.emit.generate_front`) beside
    :func:`hwqnn.formal.reference.quant_reference_verilog`: output beat ``q`` of frame ``f``
    carries in field ``j`` element ``q * in_chunk + j``'s code (fields past the frame's end are
    free). Two frames by default, since the channel of a beat's first element is a register
    that must return to 0 at every frame's end."""
    return unit_harness_verilog(man, n_in, n_in, q.bits, False, "hwqnn_quant_ref", frames,
                                needs=f"fo * {man.ports.nf} + q + 1")  # fmt: skip


def _unit_dut(man: LayerManifest) -> list[str]:
    """A unit harness's instance of ``man``'s unit: its input beats from ``data`` (padded to
    ``s_axis_tdata``), ``valid``, ``tlast`` on beat ``bi``'s frame end; ``m_data`` and the
    other outputs as wires; never reset after power-on."""
    p = man.ports
    cb, s_bits = p.in_chunk * p.in_bits, p.s_tdata_bits
    return [
        "  wire s_ready, m_valid, m_last, frame_err;",
        f"  wire [{p.m_tdata_bits - 1}:0] m_data;",
        f"  {man.top} dut(.aclk(clk), .aresetn(1'b1),",
        f"    .s_axis_tdata({{{{{s_bits - cb}{{1'b0}}}}, data}}),"
        if s_bits > cb
        else "    .s_axis_tdata(data),",
        f"    .s_axis_tvalid(valid), .s_axis_tready(s_ready), "
        f".s_axis_tlast(bi == {p.in_beats - 1}),",
        "    .m_axis_tdata(m_data), .m_axis_tvalid(m_valid), .m_axis_tready(ready),",
        "    .m_axis_tlast(m_last), .frame_error(frame_err));",
    ]


def _unit_sink(nf: int) -> list[str]:
    """Clocked lines of a unit harness's sink: count output beats taken (``q`` within a frame of
    ``nf``, ``fo`` frames), remember whether a beat waited and what it carried."""
    return [
        f"    if (take) begin if (q == {nf - 1}) begin q <= 0; fo <= fo + 1; end "
        "else q <= q + 1; end",
        "    waited <= m_valid && !ready;",
        "    held <= m_data;",
    ]


def _unit_rules(nf: int) -> list[str]:
    """A unit's stream rules: a beat offered stays offered, unchanged, until taken; ``tlast``
    on a frame's last of ``nf`` output beats."""
    return [
        "    if (waited) begin",
        "      protocol_valid_held: assert (m_valid);",
        "      protocol_data_stable: assert (m_data == held);",
        "    end",
        f"    if (m_valid) protocol_tlast: assert (m_last == (q == {nf - 1}));",
    ]


def unit_harness_verilog(man: LayerManifest, n_in: int, n_out: int, out_bits: int, signed: bool,
                         ref: str, frames: int = 1, needs: str | None = None) -> str:  # fmt: skip
    """Module ``hwqnn_layer_formal`` around the unit of ``man`` (``n_in`` inputs of the ports'
    ``in_bits`` a frame, ``nf`` output beats of ``pe`` fields, the first ``n_out`` of them
    meaningful) and one reference module ``ref`` (``inputs`` in, ``y{o}`` out) per frame.
    Causality (``protocol_no_output_before_its_input``): output beat ``q`` of frame ``fo`` is
    taken only once ``needs`` input beats (a Verilog expression of ``fo`` and ``q``) were; by
    default a whole frame, ``(fo + 1) * in_beats``, as an MVTU stores and forwards."""
    p = man.ports
    k, chunk = p.in_bits, p.in_chunk
    need = needs or f"(fo + 1) * {p.in_beats}"
    beats, nf, pe, ow = p.in_beats, p.nf, p.pe, p.out_width
    m_bits = p.m_tdata_bits
    total = frames * beats
    bb = max(1, (total + 1).bit_length())
    fb = max(1, (frames * nf + 1).bit_length())
    v = [
        "`default_nettype none",
        "module hwqnn_layer_formal(input wire clk);",
        f"  (* anyconst *) reg [{frames * n_in * k - 1}:0] frame;  // frame f at {n_in * k}*f",
        "  (* anyseq *) reg gap;",
        "  (* anyseq *) reg ready;",
        f"  reg [{bb - 1}:0] beat = 0, bi = 0;  // beats taken; the beat within its frame",
        f"  reg [{bb - 1}:0] fi = 0;  // the frame of the next input beat",
        f"  reg [{bb - 1}:0] done = 0;  // input frames taken whole",
        "  reg valid = 0;",
        f"  wire [{frames * n_in * k + chunk * k - 1}:0] padded = "
        f"{{{{{chunk * k}{{1'b0}}}}, frame}};",
        f"  wire [{chunk * k - 1}:0] data = padded >> ({n_in * k} * fi + {chunk * k} * bi);",
        *_unit_dut(man),
        "  wire take = m_valid && ready;",
        f"  reg [{fb - 1}:0] fo = 0, q = 0;  // the frame and neuron fold of the next output",
        "  reg waited = 0;",
        f"  reg [{m_bits - 1}:0] held = 0;",
        "  always @(posedge clk) begin",
        "    if (valid && s_ready) begin",
        "      beat <= beat + 1;",
        f"      if (bi == {beats - 1}) begin bi <= 0; fi <= fi + 1; done <= done + 1; end",
        "      else bi <= bi + 1;",
        f"      valid <= (beat + 1 < {total}) && !gap;",
        f"    end else if (!valid) valid <= (beat < {total}) && !gap;",
        *_unit_sink(nf),
        "  end",
    ]
    width = f"signed [{WIDTH - 1}:0]" if signed else f"[{out_bits - 1}:0]"
    for f in range(frames):
        ys = [f"r{f}_y{o}" for o in range(n_out)]
        v.append(f"  wire {width} {', '.join(ys)};")
        ports = ", ".join(f".y{o}({y})" for o, y in enumerate(ys))
        v.append(f"  {ref} ref{f}(.inputs(frame[{f * n_in * k} +: {n_in * k}]), {ports});")
    v.append("  always @(*) begin")
    for f in range(frames):
        for qq in range(nf):
            v.append(f"    if (take && fo == {f} && q == {qq}) begin")
            for pp in range(pe):
                o = qq * pe + pp
                if o >= n_out:
                    continue
                field = f"m_data[{ow * pp + ow - 1}:{ow * pp}]"
                got = (f"$signed({{{{{WIDTH - ow}{{m_data[{ow * pp + ow - 1}]}}}}, {field}}})"
                       if signed else field)  # fmt: skip
                v.append(f"      equivalence_f{f}_n{o}: assert ({got} == r{f}_y{o});")
            v.append("    end")
    v += [
        *_unit_rules(nf),
        f"    if (take) protocol_no_output_before_its_input: assert (beat >= {need});",
        f"    if (take && fo == {frames - 1} && q == {nf - 1}) cover_last_output: cover (1);",
        "  end",
        "endmodule",
    ]
    return "\n".join(v) + "\n"


def window_harness_verilog(w: Window, man: LayerManifest, pad_code: int, frames: int = 2) -> str:
    """Module ``hwqnn_layer_formal`` around a sliding window alone (``man`` from
    :func:`hwqnn.hw.emit.generate_window`), by tracking one output: the solver picks a frame
    ``jf`` and an output beat ``jq`` (free constants) and the input data (free on every beat,
    held while a beat waits); the harness keeps the beats of the pixel that beat ``jq`` reads
    by the window's definition (:func:`hwqnn.formal.reference.window_pixels`) as they go in, and
    when beat ``jq`` of frame ``jf`` comes out it must carry that pixel, or ``pad_code`` in every
    channel outside the image. Since the pair is free, this holds for every output beat of
    every frame. Against a whole-frame miter (every beat against a reference module of the
    frame), measured: a 3x2 image of 2-bit codes, 2x2 window, two frames: 160 s against no
    verdict in 400 s; 2x2x2, stride 2, two frames: 24.8 against 36.1 s; but a 3x3 image, one
    frame: 70.4 against 45.8 s. Two frames by default:
    the line buffer holds the end of one image and the start of the next. Protocol as on the
    other units; causality follows (an output taken before its pixel went in cannot equal data
    the solver picks later)."""
    p = man.ports
    k, chunk, beats, nf, c = p.in_bits, p.in_chunk, p.in_beats, p.nf, w.channels
    bpp = c // chunk  # input beats per pixel
    cb, pb = chunk * k, c * k
    m_bits = p.m_tdata_bits
    total = frames * beats
    bb = max(1, (total + 1).bit_length())
    fb = max(1, (frames * nf + 1).bit_length())
    pixels = window_pixels(w)
    pad = sum(pad_code << (k * ch) for ch in range(c))
    v = [
        "`default_nettype none",
        "module hwqnn_layer_formal(input wire clk);",
        f"  (* anyseq *) reg [{cb - 1}:0] din;  // the source's next beat, free",
        "  (* anyseq *) reg gap;",
        "  (* anyseq *) reg ready;",
        f"  (* anyconst *) reg [{fb - 1}:0] jf;  // the tracked frame",
        f"  (* anyconst *) reg [{fb - 1}:0] jq;  // the tracked output beat of that frame",
        f"  always @(*) assume (jf < {frames} && jq < {nf});",
        f"  reg [{bb - 1}:0] beat = 0, bi = 0, fi = 0;  // beats taken; within the frame; frame",
        "  reg valid = 0;",
        f"  reg [{cb - 1}:0] data = 0;",
        *_unit_dut(man),
        "  wire take_in = valid && s_ready;",
        "  wire take = m_valid && ready;",
        f"  reg [{fb - 1}:0] fo = 0, q = 0;  // the frame and beat of the next output",
        "  reg waited = 0;",
        f"  reg [{m_bits - 1}:0] held = 0;",
        "  // the pixel output beat jq reads (want_pad: outside the image)",
        f"  reg [{bb - 1}:0] want_pix;",
        "  reg want_pad;",
        "  always @(*) begin",
        "    want_pix = 0; want_pad = 1;",
        "    case (jq)",
    ]
    for q, px in enumerate(pixels):
        if px is not None:
            v.append(f"      {q}: begin want_pix = {px}; want_pad = 0; end")
    v += [
        "      default: ;",
        "    endcase",
        "  end",
        f"  reg [{pb - 1}:0] saved = 0;  // the tracked pixel's channels, as they went in",
        f"  wire [{pb - 1}:0] want = want_pad ? {pb}'d{pad} : saved;",
        "  always @(posedge clk) begin",
        "    if (!valid || s_ready) data <= din;  // a beat offered is held until taken",
        "    if (take_in) begin",
        "      beat <= beat + 1;",
        f"      if (bi == {beats - 1}) begin bi <= 0; fi <= fi + 1; end else bi <= bi + 1;",
        f"      if (fi == jf && bi / {bpp} == want_pix)",
        f"        saved[{cb} * (bi % {bpp}) +: {cb}] <= data;",
        f"      valid <= (beat + 1 < {total}) && !gap;",
        f"    end else if (!valid) valid <= (beat < {total}) && !gap;",
        *_unit_sink(nf),
        "  end",
        "  always @(*) begin",
        f"    if (take && fo == jf && q == jq) equivalence: assert (m_data[{pb - 1}:0] == want);",
        *_unit_rules(nf),
        f"    if (take) protocol_no_output_after_the_frames: assert (fo < {frames});",
        f"    if (take && fo == {frames - 1} && q == {nf - 1}) cover_last_output: cover (1);",
        "  end",
        "endmodule",
    ]
    return "\n".join(v) + "\n"


def reduce_harness_verilog(group: int, man: LayerManifest, frames: int = 2) -> str:
    """The harness for a max-reduce alone beside
    :func:`hwqnn.formal.reference.reduce_reference_verilog`: output beat ``q`` of frame ``f``
    is group ``q``'s largest codes, not before the group's last pixel went in."""
    p = man.ports
    n_in = p.nf * group * p.pe
    return unit_harness_verilog(man, n_in, p.nf * p.pe, p.out_width, False, "hwqnn_reduce_ref",
                                frames, needs=f"(fo * {p.nf} + q + 1) * {group}")  # fmt: skip
