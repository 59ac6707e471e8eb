"""einsum: sums of products over named indices, ``einsum("bij,bjk->bik", a, b)``.

Backward: the output is linear in each operand, so the gradient of operand k is itself an einsum
of g with all the other operands, written to operand k's subscripts. Two details make it general:

* an index of operand k that appears nowhere else (summed away inside k alone, "ij->i") is
  broadcast back: a vector of ones with that index joins the product;
* an index repeated within operand k ("ii->i", a diagonal) is renamed, and an identity matrix
  tying the two names puts the gradient back on the diagonal only.
"""
import string

from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError


def parse(equation, shapes):
    """(input subscripts per operand, output subscripts) with '...' spelled out as letters and the
    implicit output (no '->': the indices seen once, sorted) made explicit."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ArgumentError(f"einsum(): {len(terms)} operands in the equation {equation!r}, "
                            f"but {len(shapes)} were given")
    used = set(equation) - set(".,->")
    spare = [c for c in string.ascii_letters if c not in used]
    ellipsis_dims = max((len(shape) - len(term.replace("...", "")) for term, shape in zip(terms, shapes)
                         if "..." in term), default=0)
    broadcast = "".join(spare[:ellipsis_dims])
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            own = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", broadcast[ellipsis_dims - own:])
        if len(term) != len(shape):
            raise ArgumentError(f"einsum(): the subscripts {term!r} do not match an operand of shape {tuple(shape)}")
        expanded.append(term)
    if arrow:
        output = output.replace("...", broadcast)
    else:
        letters = "".join(expanded)
        output = broadcast + "".join(sorted(c for c in set(letters) - set(broadcast) if letters.count(c) == 1))
    return expanded, output


class Einsum(Function):
    """y = einsum(equation, *operands).

    dL/d(operand k) = einsum(g and every other operand -> operand k's subscripts), with ones for
    the indices only operand k has and identity matrices for its repeated indices (see above).
    """

    def forward(self, *operands, equation=""):
        xp = get_array_module(operands[0])
        self.terms, self.output = parse(equation, [x.shape for x in operands])
        self.operands = operands
        return xp.asarray(xp.einsum(",".join(self.terms) + "->" + self.output, *operands))

    def backward(self, g):
        xp = get_array_module(g)
        sizes = {}
        for term, x in zip(self.terms, self.operands):
            sizes.update(zip(term, x.shape))
        grads = []
        for k, (term, x) in enumerate(zip(self.terms, self.operands)):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            terms, arrays = [self.output], [g]
            for j, (other, array) in enumerate(zip(self.terms, self.operands)):
                if j != k:
                    terms.append(other)
                    arrays.append(array)
            target = ""
            free = [c for c in string.ascii_letters if c not in "".join(self.terms) + self.output]
            for c in term:
                if c in target:  # a repeated index: a new name, tied to the first by an identity
                    renamed = free.pop()
                    terms.append(c + renamed)
                    arrays.append(xp.eye(sizes[c], dtype=g.dtype))
                    c = renamed
                target += c
            present = set("".join(terms))
            for c in set(target) - present:  # only operand k had it: broadcast back with ones
                terms.append(c)
                arrays.append(xp.ones(sizes[c], dtype=g.dtype))
            grads.append(xp.asarray(xp.einsum(",".join(terms) + "->" + target, *arrays)).astype(g.dtype, copy=False))
        return tuple(grads)
