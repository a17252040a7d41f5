"""Internal kernels compiled for linking only: no machine code of their own.

Numba compiles every function a kernel calls as a function of its own: typed,
lowered to LLVM IR, optimised as a module, turned into machine code and (with
``cache=True``) written to disk, although only the IR is ever used -- the
caller links the callee's IR into its own module, optimises the whole again and
makes machine code of the whole again.  For skbp's internal kernels (those
only compiled code calls, ``skbp._jit.jit`` without ``entry=True``) the work
done for their own module is thrown away, and on a cold first fit it is a
large share of all LLVM time.

:class:`LinkOnlyCompiler` is Numba's default nopython pipeline with one pass
added before lowering, which gives the function a :class:`LinkOnlyLibrary`:

* its module gets Numba's function-level passes as usual, but not the module
  optimisation (every caller runs that over the linked whole, callee
  included);
* no machine code is made unless someone asks for the address of a function
  it defines or for its object code (neither happens for an internal kernel:
  it has no CPython wrapper and is not cached on disk); should it be asked,
  the machine code is made then, and the environment pointer Numba wanted
  to set goes in at that moment.

A cold first fit is much faster with it (``python benchmarks/bench.py
first-use``), with the same weights and predictions (the last bits may differ
in SGD fits, multiply-adds contracted differently once a callee is optimised
inside its caller) and the same warm speed.

One thing the machine code of a callee used to do for its callers: Numba
points each compiled function's environment global (what a nopython function
needs to build Python objects, e.g. the arguments of an exception raised with
run-time values) at its environment right after compiling it, and a caller
linked against a callee's machine code shared that global.  Without the
callee's machine code the caller's own copy of the global is the one used, so
:data:`EntryCompiler` (the entry kernels' pipeline) points every environment
global in the entry kernel's code at its environment, as Numba does when it
loads a kernel from the cache.

This relies on Numba internals (``CPUCodeLibrary``'s finalisation steps, the
compiler's pass manager), so it is imported only on the Numba releases skbp is
tested with (``skbp._numba_support``).  If this Numba lacks any of them all
the same, :data:`LinkOnlyCompiler` is ``None`` and internal kernels are
compiled the ordinary way: slower to compile, the same results.
"""

import weakref

LinkOnlyCompiler = None
EntryCompiler = None

try:
    from numba.core.codegen import JITCodeLibrary
    from numba.core.compiler import Compiler, DefaultPassBuilder
    from numba.core.compiler_machinery import LoweringPass, register_pass
    from numba.core.environment import lookup_environment
    from numba.core.typed_passes import AnnotateTypes, NativeParforLowering, NoPythonBackend

    _NEEDED = ("_finalize_dynamic_globals", "_verify_declare_only_symbols", "_finalize_specific")
    if not all(hasattr(JITCodeLibrary, name) for name in _NEEDED):
        raise ImportError("a Numba whose code libraries finalise differently")
except ImportError:  # pragma: no cover - depends on the Numba version
    pass
else:

    class _DeferredEnvCodegen:
        """The library's codegen, except that ``set_env`` waits for machine code.

        Numba stores a function's environment pointer into the machine code's
        global variable right after compiling it; without machine code there is
        nowhere to store it yet.
        """

        def __init__(self, library):
            self._library = library

        def __getattr__(self, name):
            return getattr(self._library._codegen, name)

        def set_env(self, env_name, env):
            lib = self._library
            if lib._pending:
                lib._envs.append((env_name, env))
            else:
                lib._codegen.set_env(env_name, env)

    class LinkOnlyLibrary(JITCodeLibrary):
        """A code library that makes machine code only when it is asked for."""

        _pending = False

        @property
        def codegen(self):
            return _DeferredEnvCodegen(self)

        def _optimize_final_module(self):
            # every caller optimises the linked whole, this module included
            pass

        def _finalize_final_module(self):
            # CPUCodeLibrary._finalize_final_module without adding the module to
            # the execution engine and compiling it
            self._finalize_dynamic_globals()
            self._verify_declare_only_symbols()
            self._final_module._CPUCodeLibrary__library = weakref.proxy(self)
            self._envs = []
            self._pending = True
            self._finalized = True

        def _make_machine_code(self):
            if not self._pending:
                return
            self._pending = False
            cleanup = self._codegen._add_module(self._final_module)
            if cleanup:
                weakref.finalize(self, cleanup)
            self._finalize_specific()
            for env_name, env in self._envs:
                self._codegen.set_env(env_name, env)
            self._envs = []

        def get_pointer_to_function(self, name):
            self._ensure_finalized()
            try:
                fn = self._final_module.get_function(name)
            except NameError:
                return 0
            if fn.is_declaration:
                return 0
            self._make_machine_code()
            return super().get_pointer_to_function(name)

        def _get_compiled_object(self):
            self._make_machine_code()
            return super()._get_compiled_object()

    @register_pass(mutates_CFG=False, analysis_only=False)
    class _UseLinkOnlyLibrary(LoweringPass):
        """Give the function being compiled a :class:`LinkOnlyLibrary`."""

        _name = "skbp_link_only_library"

        def __init__(self):
            LoweringPass.__init__(self)

        def run_pass(self, state):
            if state.library is None:
                codegen = state.targetctx.codegen()
                state.library = LinkOnlyLibrary(codegen, state.func_id.func_qualname)
                state.library.enable_object_caching()
            return True

    @register_pass(mutates_CFG=False, analysis_only=False)
    class _SetLinkedEnvironments(LoweringPass):
        """Point every environment global an entry kernel's code defines at its
        environment (Numba sets only the kernel's own after compiling it)."""

        _name = "skbp_set_linked_environments"

        def __init__(self):
            LoweringPass.__init__(self)

        def run_pass(self, state):
            library = state.library
            engine = library._codegen._engine
            for gv in library._final_module.global_variables:
                name = gv.name
                if gv.is_declaration or not name.startswith("_ZN08NumbaEnv"):
                    continue
                env = lookup_environment(name)
                if env is not None and engine.get_global_value_address(name):
                    library._codegen.set_env(name, env)
            return True

    @register_pass(mutates_CFG=True, analysis_only=False)
    class _LinkOnlyParforLowering(NativeParforLowering):
        """Numba's lowering of a ``prange`` kernel, its loop body and wrappers link-only.

        Lowering a parallel loop compiles the loop body as a function of its own
        and two wrappers around it, each into a code library that is optimised
        and made into machine code at once, then linked into the kernel's and
        optimised again with it.  Created here, during this pass, those
        libraries are :class:`LinkOnlyLibrary` objects: the entry kernel that
        links them optimises and compiles them once, with everything else.  The
        kernel's own library is made first, the ordinary way (or by
        :class:`_UseLinkOnlyLibrary`).  Numba compiles one function at a time
        (its global compiler lock), so no other compilation sees the switch.
        """

        _name = "skbp_link_only_parfor_lowering"

        def run_pass(self, state):
            codegen = state.targetctx.codegen()
            if state.library is None:  # as Numba's lowering would
                state.library = codegen.create_library(state.func_id.func_qualname)
                state.library.enable_object_caching()
            had = "_library_class" in codegen.__dict__
            saved = codegen.__dict__.get("_library_class")
            codegen._library_class = LinkOnlyLibrary
            try:
                return super().run_pass(state)
            finally:
                if had:
                    codegen._library_class = saved
                else:
                    del codegen._library_class

    def _compiler_with(extra_pass, after, doc):
        """Numba's nopython pipeline with ``extra_pass`` run after the pass ``after``
        (and :class:`_LinkOnlyParforLowering` for a ``prange`` kernel)."""

        class _Compiler(Compiler):
            __doc__ = doc

            def define_pipelines(self):
                pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
                pm.add_pass_after(extra_pass, after)
                pm.passes = [
                    (_LinkOnlyParforLowering, "link-only parfor lowering")
                    if cls is NativeParforLowering else (cls, desc)
                    for cls, desc in pm.passes
                ]  # fmt: skip
                pm.finalize()
                return [pm]

        return _Compiler

    LinkOnlyCompiler = _compiler_with(
        _UseLinkOnlyLibrary, AnnotateTypes, "Numba's pipeline, lowering into a LinkOnlyLibrary."
    )
    EntryCompiler = _compiler_with(
        _SetLinkedEnvironments, NoPythonBackend,
        "Numba's pipeline, then every environment global of the code set.",
    )  # fmt: skip
