"""Call-heavy workload: a small stack machine that runs a program, one call per instruction."""

from __future__ import annotations


class Machine:
    def __init__(self, program):
        self.program = program
        self.stack = []
        self.variables = {}
        self.pc = 0

    def push(self, value):
        self.stack.append(value)

    def pop(self):
        return self.stack.pop()

    def run(self):
        program = self.program
        handlers = HANDLERS
        while self.pc < len(program):
            opcode, argument = program[self.pc]
            self.pc += 1
            handlers[opcode](self, argument)
        return self.variables


def op_const(machine, value):
    machine.push(value)


def op_load(machine, name):
    machine.push(machine.variables[name])


def op_store(machine, name):
    machine.variables[name] = machine.pop()


def op_add(machine, _):
    right = machine.pop()
    machine.push(machine.pop() + right)


def op_sub(machine, _):
    right = machine.pop()
    machine.push(machine.pop() - right)


def op_mod(machine, _):
    right = machine.pop()
    machine.push(machine.pop() % right)


def op_less(machine, _):
    right = machine.pop()
    machine.push(machine.pop() < right)


def op_jump_if_false(machine, target):
    if not machine.pop():
        machine.pc = target


def op_jump(machine, target):
    machine.pc = target


HANDLERS = {
    "const": op_const,
    "load": op_load,
    "store": op_store,
    "add": op_add,
    "sub": op_sub,
    "mod": op_mod,
    "less": op_less,
    "jump_if_false": op_jump_if_false,
    "jump": op_jump,
}


def assemble(limit):
    """Return a program that sums the numbers below *limit* divisible by 3 or 7."""
    return [
        ("const", 0), ("store", "i"), ("const", 0), ("store", "total"),
        # 4: loop head, leaves at 26 once i >= limit.
        ("load", "i"), ("const", limit), ("less", None), ("jump_if_false", 26),
        # 8: i % 3 == 0 or i % 7 == 0 goes to 17, else to 21.
        ("load", "i"), ("const", 3), ("mod", None), ("jump_if_false", 17),
        ("load", "i"), ("const", 7), ("mod", None), ("jump_if_false", 17),
        ("jump", 21),
        # 17: total += i
        ("load", "total"), ("load", "i"), ("add", None), ("store", "total"),
        # 21: i += 1
        ("load", "i"), ("const", 1), ("add", None), ("store", "i"), ("jump", 4),
    ]


def main():
    program = assemble(400_000)
    result = Machine(program).run()
    print("total", result["total"])


if __name__ == "__main__":
    main()
