//! `#[derive(Module)]`: makes a struct of layers and parameters a `umx_nn::Module`.
//!
//! Every field is visited under its name (`layers.0.weight`), so each field's type must be a
//! `Module` itself: a `Param`, a layer, a `Vec`/`Option`/`BTreeMap` of them, or a plain value
//! (numbers, bools, strings, which hold no parameters). Mark other fields `#[module(skip)]`.
//!
//! The generated code names the trait as `::umx::nn::Module` (the facade users depend on); a
//! crate that depends on `umx-nn` directly says so with `#[module(crate = "umx_nn")]`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, parse_macro_input};

/// Derives `umx_nn::Module` for a struct by visiting each field under its name.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let mut krate: syn::Path = syn::parse_quote!(::umx::nn);
    for attr in &input.attrs {
        if attr.path().is_ident("module") {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    let s: syn::LitStr = meta.value()?.parse()?;
                    krate = s.parse()?;
                    Ok(())
                } else {
                    Err(meta.error("expected `crate = \"path\"`"))
                }
            });
            if let Err(e) = r {
                return e.to_compile_error().into();
            }
        }
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let Data::Struct(data) = &input.data else {
        return syn::Error::new_spanned(&input.ident, "Module can only be derived for structs")
            .to_compile_error()
            .into();
    };
    let mut visit = Vec::new();
    let mut visit_mut = Vec::new();
    let mut training = Vec::new();
    let mut quantizable = Vec::new();
    let fields: Vec<(syn::Member, String, &syn::Field)> = match &data.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|f| {
                let id = f.ident.clone().expect("named field");
                let s = id.to_string();
                (syn::Member::Named(id), s, f)
            })
            .collect(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| (syn::Member::Unnamed(i.into()), i.to_string(), f))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, label, field) in fields {
        let mut skip = false;
        for attr in &field.attrs {
            if attr.path().is_ident("module") {
                let r = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("skip") {
                        skip = true;
                        Ok(())
                    } else {
                        Err(meta.error("expected `skip`"))
                    }
                });
                if let Err(e) = r {
                    return e.to_compile_error().into();
                }
            }
        }
        if skip {
            continue;
        }
        visit.push(quote! {
            #krate::Module::visit_params(&self.#member, &#krate::join(prefix, #label), f);
        });
        visit_mut.push(quote! {
            #krate::Module::visit_params_mut(&mut self.#member, &#krate::join(prefix, #label), f);
        });
        training.push(quote! {
            #krate::Module::set_training(&mut self.#member, training);
        });
        quantizable.push(quote! {
            #krate::Module::visit_quantizable_mut(&mut self.#member, &#krate::join(prefix, #label), f);
        });
    }
    quote! {
        impl #impl_generics #krate::Module for #name #ty_generics #where_clause {
            fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a #krate::Param)) {
                #(#visit)*
            }
            fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut #krate::Param)) {
                #(#visit_mut)*
            }
            fn set_training(&mut self, training: bool) {
                let _ = training;
                #(#training)*
            }
            fn visit_quantizable_mut(
                &mut self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &mut dyn #krate::Quantizable),
            ) {
                let _ = (prefix, &f);
                #(#quantizable)*
            }
        }
    }
    .into()
}
